package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// --cors-origins reaches the API: a preflight from a named origin is
// answered; a wildcard or a path is refused at start (exit 2, one line).
func TestServeCORSOrigins(t *testing.T) {
	for _, bad := range []string{"*", "https://shop.example.com/app", "shop.example.com"} {
		code, _, stderr := runCLI(cancelled(), "serve", "--cors-origins", bad, "--data-dir", t.TempDir())
		if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, "--cors-origins") {
			t.Errorf("serve --cors-origins %q: exit %d, stderr %q; want 2 and one line", bad, code, stderr)
		}
	}
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "warn",
		"--admin-token", "cors-test-admin-token", "--cors-origins", "https://shop.example.com, http://localhost:3000")
	for origin, want := range map[string]string{"http://localhost:3000": "http://localhost:3000", "https://other.example.com": ""} {
		req, _ := http.NewRequest(http.MethodOptions, srv.base+"/v1/sales/x/purchases", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,idempotency-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != http.StatusNoContent || got != want {
			t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q; want 204, %q", origin, resp.StatusCode, got, want)
		}
	}
}

// TestAdminListenerServesGRPC: with --admin-addr the admin endpoints exist
// only on the private listener, and the gRPC API is served as gRPC
// (HTTP/2 without TLS, prior knowledge) there as on the API's listener: an
// operator's gRPC client can create a sale on the admin listener.
func TestAdminListenerServesGRPC(t *testing.T) {
	const token = "admin-listener-grpc-token"
	admin := freeAddr(t)
	startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--admin-addr", admin, "--log-level", "error")
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
	c := surgev1connect.NewSaleServiceClient(h2c, "http://"+admin, connect.WithGRPC())
	id := "grpc-admin"
	req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "gRPC on the admin listener", Stock: 10})
	req.Header().Set("Authorization", "Bearer "+token)
	if _, err := c.CreateSale(context.Background(), req); err != nil {
		t.Fatalf("gRPC CreateSale on the --admin-addr listener: %v", err)
	}
}

// TestStalledHTTP2ClientIsDropped: a client that stops reading is dropped
// (docs/protection.md: write 30 s; an event stream "set[s] its own ... write
// deadlines, so ... a client that stops reading is still dropped"). Over
// HTTP/1.1 a write that cannot go on fails at its deadline and the
// connection closes. Over HTTP/2 (h2c on the API's listener) a stream's
// deadline only queues a reset behind the connection's blocked write, so
// a client that opens a large flow-control window, asks for more than the
// socket buffers hold and never reads keeps the connection, its handlers
// and the queue event stream it opened for good: with one stream allowed
// per address, its address could never follow the line again.
func TestStalledHTTP2ClientIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the write timeout")
	}
	const token = "stalled-h2-admin-token"
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "error",
		"--admin-token", token, "--insecure-user-header", "--waiting-room-streams-per-address", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(srv.base, token)
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("room"), Name: new("Room"), Stock: new(int64(10)), StartsAt: &starts,
		WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(int64(1)), Policy: new("fifo"), TicketSeconds: new(int64(60))}}); err != nil {
		t.Fatal(err)
	}
	ticket := func(user string) string {
		req, _ := http.NewRequest("POST", srv.base+"/v1/sales/room/queue", nil)
		req.Header.Set("X-User-ID", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var q struct{ Ticket string }
		if err := json.NewDecoder(resp.Body).Decode(&q); err != nil || q.Ticket == "" {
			t.Fatalf("join the line as %s: %d %v", user, resp.StatusCode, err)
		}
		return q.Ticket
	}
	stalled, probe := ticket("w1"), ticket("w2")
	// A listing of about 28 KB to ask for again and again.
	name := strings.Repeat("n", surge.MaxNameLen)
	for range 100 {
		if _, err := c.CreateSale(ctx, api.NewSale{Name: &name, Stock: new(int64(1))}); err != nil {
			t.Fatal(err)
		}
	}

	// The stalled client: a small receive buffer, windows as large as
	// HTTP/2 allows, a queue stream, then 300 listings it never reads:
	// 8 MB, more than the socket buffers hold (4 MB at most here), so the
	// server's writes on the connection block.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
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
	get := func(id uint32, path string, extra ...string) {
		hb.Reset()
		fields := append([]string{":method", "GET", ":scheme", "http", ":authority", "surge", ":path", path}, extra...)
		for i := 0; i < len(fields); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	// The queue stream is read until it is open (its 200), so that it
	// holds the address's one slot.
	get(1, "/v1/sales/room/queue/events", "waiting-room-ticket", stalled, "accept", "text/event-stream")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := hpack.NewDecoder(4096, nil)
	for open := false; !open; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("open the queue stream over HTTP/2: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil || f.StreamID != 1 || len(hf) == 0 || hf[0].Value != "200" {
				t.Fatalf("open the queue stream over HTTP/2: %v %v", hf, err)
			}
			open = true
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("open the queue stream over HTTP/2: %v", f)
		}
	}
	// From here on nothing is read.
	for i := range uint32(300) {
		get(3+2*i, "/v1/sales?limit=1000")
	}
	stalledAt := time.Now()

	// Another buyer at the same address follows the line over a fresh
	// connection: refused while the stalled client's stream holds the
	// address's one slot, served once the stalled client is dropped.
	follow := func() int {
		req, _ := http.NewRequest("GET", srv.base+"/v1/sales/room/queue/events", nil)
		req.Header.Set("Waiting-Room-Ticket", probe)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	status := follow()
	if status != http.StatusTooManyRequests {
		t.Fatalf("another buyer at the stalled client's address got %d, want 429 while the stalled client's queue stream "+
			"holds its one slot: the test proves nothing", status)
	}
	// The stream's write deadline (30 s) after its last write, which is at
	// most a heartbeat (15 s) after the stall, and a margin.
	limit := stalledAt.Add(75 * time.Second)
	for status == http.StatusTooManyRequests && time.Now().Before(limit) {
		time.Sleep(time.Second) // polling a deadline in another process
		status = follow()
	}
	if status != http.StatusOK {
		t.Fatalf("%v after a client stopped reading its HTTP/2 connection, another buyer at its address still gets %d "+
			"for the queue's events: the stalled client was never dropped, and holds its queue stream (and every "+
			"handler of the connection) for good", time.Since(stalledAt).Round(time.Second), status)
	}
	t.Logf("the stalled client was dropped after %v", time.Since(stalledAt).Round(time.Second))
}
