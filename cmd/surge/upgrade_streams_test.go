package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpgradeWithOpenQueueStream: a zero-downtime
// upgrade (SIGUSR2) of an embedded server while one buyer follows a
// waiting room's line over Server-Sent Events, as every buyer in a line
// does. The old process keeps the data directory until handOver has seen
// every connection close, and nothing ends an event stream there
// (CloseStreams runs only later, in http.Server.Shutdown), so it waits
// out the whole --shutdown-timeout; the new process cannot open the
// store meanwhile, and every purchase waits in the socket's backlog for
// that long.
func TestUpgradeWithOpenQueueStream(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-stream-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	hc := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path, user string, body string, hdr map[string]string) (*http.Response, error) {
		req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.Header.Set("X-User-ID", user)
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return hc.Do(req)
	}
	mustOK := func(resp *http.Response, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b)
		}
		return b
	}
	starts := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	mustOK(do("POST", "/v1/sales", "", `{"id":"room","name":"Room","stock":10,"starts_at":"`+starts+`",
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":60}}`, nil))
	plain := createSale(t, p.base, token, 100, 1)

	var q struct{ Ticket string }
	if err := json.Unmarshal(mustOK(do("POST", "/v1/sales/room/queue", "w1", "", nil)), &q); err != nil || q.Ticket == "" {
		t.Fatalf("join: %v %+v", err, q)
	}
	// The buyer follows its place; the stream stays open while it waits.
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	req, _ := http.NewRequestWithContext(streamCtx, "GET", p.base+"/v1/sales/room/queue/events", nil)
	req.Header.Set("Waiting-Room-Ticket", q.Ticket)
	resp, err := (&http.Client{}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open the queue's event stream: %v %v", err, resp)
	}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()

	upgradeUntilHandover(t, p, pidFile)

	// A buyer of the sale without a waiting room buys now.
	began := time.Now()
	resp2, err := do("POST", "/v1/sales/"+plain+"/purchases", "b1", "", map[string]string{"Idempotency-Key": "k1"})
	took := time.Since(began)
	if err != nil {
		t.Fatalf("purchase during the upgrade failed after %v: %v", took.Round(time.Millisecond), err)
	}
	resp2.Body.Close()
	t.Logf("purchase answered %d after %v", resp2.StatusCode, took.Round(time.Millisecond))
	if took > 3*time.Second {
		log, _ := os.ReadFile(p.logPath)
		t.Errorf("a purchase waited %v for the upgrade to finish (status %d): the old process held the data directory until its one open queue stream timed out (--shutdown-timeout 10s)\n%s",
			took.Round(time.Millisecond), resp2.StatusCode, tail(string(log), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestUpgradeNotHeldByBusyHTTP2Client: docs/operations.md says an
// upgrade's old process ends keep-alive, so that every connection closes
// "after its answer", and no request is held. An HTTP/1.1 connection
// does; an HTTP/2 connection (a gRPC client, or a proxy multiplexing its
// buyers on h2c) that always has a call in flight never has its "last"
// answer: net/http's HTTP/2 server sends its GOAWAY only when a stream
// ends with none left, and the handover starts Shutdown (whose GOAWAY
// would end it) only once every connection is idle. Such a client keeps
// the old process serving its new calls, holding the data directory, and
// every other buyer waits the whole --shutdown-timeout.
func TestUpgradeNotHeldByBusyHTTP2Client(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-busy-h2-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	sale := createSale(t, p.base, token, 100000, 1)

	// The busy client: one HTTP/2 connection, a purchase always in flight.
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	busyHTTP2(t, &http.Transport{Protocols: &h2}, p.base, sale)
	time.Sleep(1500 * time.Millisecond) // the busy client in full swing: several purchases in flight

	upgradeUntilHandover(t, p, pidFile)

	// Another buyer, on a connection of its own, buys now.
	if code, took := purchaseTimed(t, p.base, sale); took > 3*time.Second || code != http.StatusCreated {
		t.Errorf("a purchase waited %v for the upgrade to finish (status %d): the old process kept serving a busy HTTP/2 "+
			"client's new calls, and held the data directory, until its --shutdown-timeout (10s)", took.Round(time.Millisecond), code)
	}
}

// busyHTTP2 keeps a purchase always in flight on tr's one HTTP/2
// connection, as on a busy gRPC channel: one started every 200 ms, each
// sending its body over a second, until the test ends. It returns once
// the first is answered 201 (not waiting for it before starting the
// next: its stream ending with none left would send the connection a
// GOAWAY once keep-alive is off).
func busyHTTP2(t *testing.T, tr *http.Transport, base, sale string) {
	t.Helper()
	busy := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait(); tr.CloseIdleConnections() })
	buy := func(n int) (int, error) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, `{"quantity":`)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			_, _ = io.WriteString(pw, `1}`)
			pw.Close()
		}()
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/sales/"+sale+"/purchases", pr)
		req.Header.Set("X-User-ID", fmt.Sprintf("busy-%d", n))
		req.Header.Set("Idempotency-Key", "k1")
		resp, err := busy.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("the busy client's purchase went over %s: the test would prove nothing", resp.Proto)
		}
		return resp.StatusCode, nil
	}
	var served sync.Once
	first := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, err := buy(n); err == nil && code == http.StatusCreated {
					served.Do(func() { close(first) })
				}
			}()
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("the busy client bought nothing on its connection")
	}
}

// purchaseTimed buys one unit on a connection of its own and says how
// long the answer took.
func purchaseTimed(t *testing.T, base, sale string) (int, time.Duration) {
	t.Helper()
	began := time.Now()
	req, _ := http.NewRequest("POST", base+"/v1/sales/"+sale+"/purchases", nil)
	req.Header.Set("X-User-ID", "b1")
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}).Do(req)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("purchase during the upgrade failed after %v: %v", took.Round(time.Millisecond), err)
	}
	resp.Body.Close()
	t.Logf("purchase answered %d after %v", resp.StatusCode, took.Round(time.Millisecond))
	return resp.StatusCode, took
}

// prefaceSplitConn is a client connection whose first bytes (the start
// of HTTP/2's preface) were sent by hand already: its writer skips them.
type prefaceSplitConn struct {
	net.Conn
	skip int
}

func (c *prefaceSplitConn) Write(b []byte) (int, error) {
	n := 0
	if c.skip > 0 {
		k := min(c.skip, len(b))
		c.skip -= k
		n, b = k, b[k:]
	}
	m, err := c.Conn.Write(b)
	return n + m, err
}

// TestUpgradeNotHeldByHTTP2ClientMidPreface: a busy HTTP/2 client whose
// connection had sent the first bytes of its preface ("PRI * HTTP/2.0")
// but not the rest when the handover began. The handover takes it for
// an HTTP/2 connection and starts Shutdown, whose GOAWAY goes only to
// the HTTP/2 connections net/http serves at that instant; this one is
// served a moment later, never gets a GOAWAY, and with a call always in
// flight holds the upgrade as TestUpgradeNotHeldByBusyHTTP2Client's did.
func TestUpgradeNotHeldByHTTP2ClientMidPreface(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	dataDir, token := t.TempDir(), "upgrade-split-h2-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile) // --shutdown-timeout 10s
	sale := createSale(t, p.base, token, 100000, 1)

	raw, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	const head = "PRI * HTTP/2.0"
	if _, err := io.WriteString(raw, head); err != nil {
		t.Fatal(err)
	}
	upgradeUntilHandover(t, p, pidFile)

	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	dialed := false
	tr := &http.Transport{Protocols: &h2, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dialed {
			return nil, fmt.Errorf("the busy client dials once")
		}
		dialed = true
		return &prefaceSplitConn{Conn: raw, skip: len(head)}, nil
	}}
	busyHTTP2(t, tr, p.base, sale)

	if code, took := purchaseTimed(t, p.base, sale); took > 3*time.Second || code != http.StatusCreated {
		t.Errorf("a purchase waited %v for the upgrade to finish (status %d): the old process kept serving a busy HTTP/2 "+
			"client (its preface half sent when the handover began) and held the data directory until its --shutdown-timeout (10s)",
			took.Round(time.Millisecond), code)
	}
}
