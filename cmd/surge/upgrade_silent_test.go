package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
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

// TestHandOverClosesIdleAdminGRPCConnection: since 1616887 the admin
// listener serves h2c, so an operator's gRPC client (a long-lived channel,
// as every gRPC client keeps) holds an HTTP/2 connection to it. At a
// zero-downtime upgrade, docs/operations.md: "The old process stops
// accepting and ends keep-alive: idle connections close at once". handOver
// ends keep-alive with SetKeepAlivesEnabled(false), which closes idle
// HTTP/1 connections only (net/http: "TODO: Issue 26303: close HTTP/2
// conns as soon as they become idle"): the idle h2c connection stays, so
// handOver waits out the whole --shutdown-timeout, and in embedded mode
// the new process cannot open the store meanwhile: every purchase waits
// in the socket's backlog for that long.
func TestHandOverClosesIdleAdminGRPCConnection(t *testing.T) {
	s := &server{log: slog.New(slog.DiscardHandler)}
	s.http = &http.Server{} // the API's: no connection here
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.conns.Store(surgehttp.LimitConns(apiLn, surgehttp.ConnLimits{Max: 10}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.lns.admin = ln
	s.admin = opsServer(defaultHTTPTimeouts(), s.adminOpen.listen(ln), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), s.adminOpen.track(nil), s.log)
	defer s.admin.Close()

	// A gRPC-style client: prior-knowledge HTTP/2, one call, then idle.
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	defer h2c.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2c}).Get("http://" + ln.Addr().String() + "/v1/sales")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("the admin listener answered over %s, want HTTP/2", resp.Proto)
	}
	time.Sleep(100 * time.Millisecond) // the call is over: the connection is idle

	const timeout = 5 * time.Second
	began := time.Now()
	s.handOver(timeout)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("handOver with one idle h2c connection on the admin listener took %v (--shutdown-timeout %v): "+
			"the idle connection was not closed, so the upgrade waited it out", took.Round(10*time.Millisecond), timeout)
	}
}

// TestUpgradeNotHeldByIdleAdminGRPCClient: the same end to end. An
// embedded server with --admin-addr; an operator's gRPC client (HTTP/2
// without TLS, the connection kept, as a gRPC channel does) made one call
// on the admin listener and idles. docs/operations.md, "Zero-downtime
// upgrade": the old process "ends keep-alive: idle connections close at
// once", then closes the store so that the new one opens it. The idle
// HTTP/2 connection is never closed, so the old process keeps the data
// directory for the whole --shutdown-timeout (10 s here), and a purchase
// waits in the backlog for that long.
func TestUpgradeNotHeldByIdleAdminGRPCClient(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-h2-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	adminAddr := freeAddr(t)
	p := startProc(t, dataDir, token, "--pid-file", pidFile, "--admin-addr", adminAddr)
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	defer h2c.CloseIdleConnections()
	create, _ := http.NewRequest("POST", "http://"+adminAddr+"/v1/sales", strings.NewReader(`{"id":"plain","name":"Plain","stock":100}`))
	create.Header.Set("Authorization", "Bearer "+token)
	create.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: h2c, Timeout: 10 * time.Second}).Do(create)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create the sale over h2c on the admin listener: %s %d", resp.Proto, resp.StatusCode)
	}
	upgradeUntilHandover(t, p, pidFile)
	status, took := purchaseDuringUpgrade(t, p.base, "plain")
	if took > 3*time.Second {
		t.Errorf("a purchase waited %v during the upgrade (status %d): one idle gRPC (h2c) connection on the admin listener held the old process's handover until --shutdown-timeout",
			took.Round(time.Millisecond), status)
	}
}

// TestUpgradeNotHeldByIdleGRPCConnection: a gRPC client keeps its HTTP/2
// connection (h2c, prior knowledge) open between calls, idle, as every
// gRPC channel does. docs/operations.md promises that on SIGUSR2 "idle
// connections close at once"; an idle HTTP/2 connection must not hold the
// embedded handover until --shutdown-timeout (10s here), while the new
// process waits for the data directory and every purchase waits in the
// socket's backlog.
func TestUpgradeNotHeldByIdleGRPCConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-h2c-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	plain := createSale(t, p.base, token, 100, 1)

	// A gRPC client reads the sale once; its connection then stays open, idle.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	grpc := surgev1connect.NewSaleServiceClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}, p.base, connect.WithGRPC())
	if _, err := grpc.GetSale(context.Background(), connect.NewRequest(&surgev1.GetSaleRequest{Id: plain})); err != nil {
		t.Fatalf("gRPC GetSale: %v", err)
	}

	upgradeUntilHandover(t, p, pidFile)
	status, took := purchaseDuringUpgrade(t, p.base, plain)
	if status >= 500 {
		t.Errorf("purchase during the upgrade: %d", status)
	}
	if took > 2*time.Second {
		t.Errorf("a purchase waited %v during the upgrade: one idle gRPC (HTTP/2) connection held the old process's handover until --shutdown-timeout",
			took.Round(time.Millisecond))
	}
}
