package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// An h2c (prior-knowledge HTTP/2, as every gRPC client speaks) connection
// that is serving a request is not "silent": the handover's closeSilent
// must not cut it.
func TestCloseSilentSparesBusyH2C(t *testing.T) {
	var o openConns
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			time.Sleep(600 * time.Millisecond) // a unary call still working
			io.WriteString(w, "done")
		}),
		ConnState: o.track(nil),
	}
	serveH2C(hs)
	go hs.Serve(o.listen(ln))
	defer hs.Close()

	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	cl := &http.Client{Transport: tr}
	type res struct {
		body string
		err  error
	}
	done := make(chan res, 1)
	go func() {
		resp, err := cl.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			done <- res{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- res{string(b), err}
	}()
	<-started
	time.Sleep(silentGrace + 50*time.Millisecond)
	o.closeSilent(time.Now().Add(-silentGrace)) // what handOver does 250 ms in
	r := <-done
	if r.err != nil || r.body != "done" {
		t.Fatalf("a busy h2c connection was closed as silent: body %q, err %v", r.body, r.err)
	}
}

// The same for HTTP/1.1: a served connection is spared.
func TestCloseSilentSparesBusyHTTP1(t *testing.T) {
	var o openConns
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			time.Sleep(600 * time.Millisecond)
			io.WriteString(w, "done")
		}),
		ConnState: o.track(nil),
	}
	serveH2C(hs)
	go hs.Serve(o.listen(ln))
	defer hs.Close()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	<-started
	time.Sleep(silentGrace + 50*time.Millisecond)
	o.closeSilent(time.Now().Add(-silentGrace))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A client that has begun its first request (its request line is read,
// the rest of its header still on the way) is not silent: closing it
// loses a request it has started to send, and a Go client does not retry
// a request on a fresh connection.
func TestCloseSilentSparesStartedRequest(t *testing.T) {
	var o openConns
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") }),
		ConnState: o.track(nil),
	}
	serveH2C(hs)
	go hs.Serve(o.listen(ln))
	defer hs.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(silentGrace + 50*time.Millisecond) // opened before the grace
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n")
	time.Sleep(50 * time.Millisecond) // the server has read it
	o.closeSilent(time.Now().Add(-silentGrace))
	io.WriteString(c, "\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) == 0 {
		t.Fatalf("a connection whose request had begun was closed as silent: read %q, %v", b, err)
	}
	t.Logf("answer: %.40q", b)
}
