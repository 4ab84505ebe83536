package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/surgehq/surge/servicetest"
)

// TestDebugListenerDropsStalledHTTP2Client: the --debug-addr listener
// serves HTTP/2 without TLS, as the API's and the admin listener do, and
// must drop a client that stops reading as they do. net/http's HTTP/2
// server sets no write deadline on the connection (a stream's write
// timeout only queues a reset behind the connection's blocked write), so
// a client that opens windows as large as HTTP/2 allows, asks for more
// than the socket buffers hold and never reads would keep the connection,
// its slot of the listener's caps and every handler on it, blocked in a
// write, for good. The node runs with a write timeout of a second: the
// connection must be closed (its slot freed) well within the test's
// patience.
func TestDebugListenerDropsStalledHTTP2Client(t *testing.T) {
	const token = "debug-h2-stall-admin-token"
	const write = time.Second
	debug := freeAddr(t)
	l, err := loadServeConfig([]string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--debug-addr", debug}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l.c.timeouts.write = write
	log, _, err := newLogger(new(servicetest.Log), "error", "text")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), l.c, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.shutdown(10 * time.Second) })

	// One answer's size: a goroutine dump, tens of KiB, made fast.
	get, _ := http.NewRequest(http.MethodGet, "http://"+debug+"/debug/pprof/goroutine?debug=2", nil)
	get.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}).Do(get)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /debug/pprof/goroutine?debug=2: %v %v", resp, err)
	}
	one, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Far more than the server's send buffer (at most 4 MiB here) and
	// this small receive buffer hold. The server runs 250 streams at
	// once: those beyond, asked while its writes block, it refuses.
	n := 16<<20/len(one) + 1
	waitOpen := func(want int) bool {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if srv.debugConns.Stats().Open == want {
				return true
			}
		}
		return false
	}
	if !waitOpen(0) {
		t.Fatalf("the debug listener still holds %d connections before the test's own", srv.debugConns.Stats().Open)
	}

	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", debug)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range uint32(n) {
		hb.Reset()
		fields := []string{":method", "GET", ":scheme", "http", ":authority", "surge", ":path", "/debug/pprof/goroutine?debug=2",
			"authorization", "Bearer " + token}
		for j := 0; j < len(fields); j += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: fields[j], Value: fields[j+1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1 + 2*i, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	stalledAt := time.Now()
	if !waitOpen(1) {
		t.Fatalf("the debug listener holds %d connections, want the test's one", srv.debugConns.Stats().Open)
	}
	// From here on nothing is read: the server's writes on the
	// connection block, and its write timeout must end the connection.
	if !waitOpen(0) {
		t.Fatalf("%v after a client stopped reading %d goroutine dumps (%d bytes each) it asked for over HTTP/2, the debug "+
			"listener still holds %d connections: the stalled client was never dropped (want it dropped after the write timeout, %v)",
			time.Since(stalledAt).Round(time.Second), n, len(one), srv.debugConns.Stats().Open, write)
	}
}
