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

// A connection that is serving a request is not "silent": the handover's
// closeSilent must not cut it, over HTTP/1.1 or h2c (prior-knowledge
// HTTP/2, as every gRPC client speaks).
func TestCloseSilentSparesBusyConnections(t *testing.T) {
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", &http.Client{}}, {"h2c", &http.Client{Transport: h2c}}} {
		t.Run(c.name, func(t *testing.T) {
			var o openConns
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			started := make(chan struct{})
			hs := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(started)
					time.Sleep(600 * time.Millisecond) // a call still working
					io.WriteString(w, "done")
				}),
				ConnState: o.track(nil),
			}
			serveH2C(hs)
			go hs.Serve(o.listen(ln))
			defer hs.Close()
			type res struct {
				body string
				err  error
			}
			done := make(chan res, 1)
			go func() {
				resp, err := c.client.Get("http://" + ln.Addr().String() + "/")
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
			if r := <-done; r.err != nil || r.body != "done" {
				t.Fatalf("a busy connection was closed as silent: body %q, err %v", r.body, r.err)
			}
		})
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
