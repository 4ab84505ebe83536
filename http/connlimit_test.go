package http_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	surgehttp "github.com/surgehq/surge/http"
)

// limitedServer serves 200 "ok" on a loopback listener behind a
// ConnLimiter, as surge serve wires it.
func limitedServer(t *testing.T, lim surgehttp.ConnLimits, clock ...func() time.Time) (*surgehttp.ConnLimiter, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := surgehttp.LimitConns(ln, lim)
	if len(clock) > 0 {
		surgehttp.SetConnClock(cl, clock[0])
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ConnState:         cl.ConnState,
	}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Close() })
	return cl, ln.Addr().String()
}

// keepAlive is a client connection from a chosen loopback address that
// sends requests one at a time and stays open between them.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

// dialFrom connects to addr from the loopback address from (any of
// 127.0.0.0/8 is this host on Linux).
func dialFrom(t *testing.T, from, addr string) *keepAlive {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// get sends one keep-alive request and returns the status, or an error
// when the server closed the connection instead of answering.
func (k *keepAlive) get() (int, error) {
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, "GET /healthz HTTP/1.1\r\nHost: surge\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitIdle waits until n connections are idle between requests (the
// server's ConnState hook runs just after the answer is written) and the
// hook has listed them where a newcomer looks for one to reclaim.
func waitIdle(t *testing.T, cl *surgehttp.ConnLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cl.Stats().Idle < n || surgehttp.UnlistedIdle(cl) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle connections: %+v, want %d", cl.Stats(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnLimitPerAddress: one address floods the server with keep-alive
// connections; those over its cap are refused (429 or closed) while its
// first ones, and every other address, are still served.
func TestConnLimitPerAddress(t *testing.T) {
	const perAddr, flood = 8, 300
	cl, addr := limitedServer(t, surgehttp.ConnLimits{Max: 1000, PerAddr: perAddr})
	var held []*keepAlive
	served, refused := 0, 0
	for range flood {
		k := dialFrom(t, "127.0.0.2", addr)
		code, err := k.get()
		switch {
		case err == nil && code == http.StatusOK:
			served++
			held = append(held, k)
		case err != nil || code == http.StatusTooManyRequests:
			refused++
			k.c.Close()
		default:
			t.Fatalf("flood connection answered %d", code)
		}
	}
	if served != perAddr || refused != flood-perAddr {
		t.Errorf("flood of %d from one address: %d served, %d refused; want %d served", flood, served, refused, perAddr)
	}
	if st := cl.Stats(); st.Refused != flood-perAddr {
		t.Errorf("stats %+v, want %d refused", st, flood-perAddr)
	}
	// Another address is served, and so are the flood's own held ones.
	for _, from := range []string{"127.0.0.3", "127.0.0.4"} {
		if code, err := dialFrom(t, from, addr).get(); err != nil || code != http.StatusOK {
			t.Errorf("client from %s during the flood: %d %v, want 200", from, code, err)
		}
	}
	for i, k := range held {
		if code, err := k.get(); err != nil || code != http.StatusOK {
			t.Errorf("held connection %d of the flooding address: %d %v", i, code, err)
		}
	}
	// Once it closes its connections, the address is served again.
	for _, k := range held {
		k.c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for cl.Stats().Open > 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if code, err := dialFrom(t, "127.0.0.2", addr).get(); err != nil || code != http.StatusOK {
		t.Errorf("the flooding address after closing its connections: %d %v, want 200", code, err)
	}
}

// TestConnLimitExempt: a trusted proxy's address carries many clients and
// has no per-address cap.
func TestConnLimitExempt(t *testing.T) {
	_, addr := limitedServer(t, surgehttp.ConnLimits{Max: 100, PerAddr: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	for i := range 20 {
		if code, err := dialFrom(t, "127.0.0.2", addr).get(); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d from the exempt address: %d %v", i, code, err)
		}
	}
	for i := range 3 {
		code, err := dialFrom(t, "127.0.0.3", addr).get()
		if ok := err == nil && code == http.StatusOK; ok != (i < 2) {
			t.Errorf("connection %d from a capped address: %d %v", i, code, err)
		}
	}
}

// TestConnLimitTotal: with the slots held by idle keep-alive connections
// (from many addresses), a newcomer is still served: at the cap the
// longest-idle connection is closed for it; under pressure (80 % of the
// cap) those idle for PressureIdle are closed; otherwise idle connections
// are kept.
func TestConnLimitTotal(t *testing.T) {
	const pressureIdle = 5 * time.Second
	for _, tc := range []struct {
		name      string
		max, hold int
		idleFor   time.Duration // how long the held connections have been idle when the newcomer comes
		closed    int           // of them, closed for the newcomer
	}{
		{"at the cap, young idle connections", 16, 16, 0, 1},
		{"at the cap, old idle connections", 16, 16, pressureIdle, 16},
		{"under pressure, old idle connections", 20, 17, pressureIdle, 17},
		{"under pressure, young idle connections", 20, 17, pressureIdle - time.Millisecond, 0},
		{"no pressure, old idle connections", 40, 16, time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clock atomic.Int64 // nanoseconds after start
			start := time.Now()
			cl, addr := limitedServer(t, surgehttp.ConnLimits{Max: tc.max, PerAddr: 4, PressureIdle: pressureIdle},
				func() time.Time { return start.Add(time.Duration(clock.Load())) })
			held := make([]*keepAlive, tc.hold)
			for i := range held {
				held[i] = dialFrom(t, netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i/4)}).String(), addr)
				if code, err := held[i].get(); err != nil || code != http.StatusOK {
					t.Fatalf("held connection %d: %d %v", i, code, err)
				}
				waitIdle(t, cl, i+1) // so they are idle in this order
			}
			clock.Store(int64(tc.idleFor))
			if code, err := dialFrom(t, "127.0.0.3", addr).get(); err != nil || code != http.StatusOK {
				t.Fatalf("newcomer: %d %v, want 200", code, err)
			}
			// The victims were closed before the newcomer was let in, so
			// the count is final. A look with a 1 ms deadline can still
			// miss a closed one: Go checks the deadline before it reads,
			// so a goroutine descheduled for a millisecond on a loaded
			// machine times out with the FIN waiting in the socket. The
			// client looks again until it has seen as many closed as the
			// server counted, or 10 s passed.
			st := cl.Stats()
			closed := make([]bool, len(held))
			seen := 0
			for deadline := time.Now().Add(10 * time.Second); ; {
				for i, k := range held {
					if closed[i] {
						continue
					}
					_ = k.c.SetReadDeadline(time.Now().Add(time.Millisecond))
					if _, err := k.r.Peek(1); !isTimeout(err) {
						closed[i] = true
						seen++
					}
				}
				if seen >= int(st.Reclaimed) || time.Now().After(deadline) {
					break
				}
			}
			for i := 1; i < len(closed) && tc.closed == 1; i++ {
				if closed[i] {
					t.Errorf("held connection %d closed, want the longest idle (0)", i)
				}
			}
			if seen != tc.closed || int(st.Reclaimed) != seen {
				t.Errorf("%d of %d idle connections closed for a newcomer (stats %+v), want %d", seen, tc.hold, st, tc.closed)
			}
			if st.Open > tc.max {
				t.Errorf("%d connections open, cap %d", st.Open, tc.max)
			}
		})
	}
}

// isTimeout reports a read deadline that passed: the connection is open.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestConnLimitWaitsForIdle: at the cap with no connection idle, a
// newcomer waits; one of the open connections going idle after its
// request wakes the wait, and it is closed for the newcomer.
func TestConnLimitWaitsForIdle(t *testing.T) {
	cl, addr := limitedServer(t, surgehttp.ConnLimits{Max: 2, PerAddr: 4})
	// Open, no request yet: neither idle nor closable.
	first, second := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	deadline := time.Now().Add(10 * time.Second)
	for cl.Stats().Open < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 2 open", cl.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	answered := make(chan error, 1)
	go func() {
		code, err := dialFrom(t, "127.0.0.2", addr).get()
		if err == nil && code != http.StatusOK {
			err = errors.New(http.StatusText(code))
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("newcomer served at the cap with no connection idle (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if code, err := first.get(); err != nil || code != http.StatusOK {
		t.Fatalf("first connection: %d %v", code, err)
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("newcomer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("newcomer still waits after a connection went idle (stats %+v)", cl.Stats())
	}
	if st := cl.Stats(); st.Reclaimed != 1 || st.Open != 2 {
		t.Errorf("stats %+v, want 1 reclaimed and 2 open", st)
	}
	_ = second
}

// TestConnLimitTrackingResumes: the idle list is kept only near the
// pressure mark; after every connection closed (tracking stopped) and the
// cap is reached again, the newcomer still takes the longest-idle slot.
func TestConnLimitTrackingResumes(t *testing.T) {
	// Tracking starts at 8 open connections and stops below 4.
	cl, addr := limitedServer(t, surgehttp.ConnLimits{Max: 20, PerAddr: 20})
	// fill opens n connections, each idle after a request; idle were
	// idle before.
	fill := func(n, idle int) []*keepAlive {
		held := make([]*keepAlive, n)
		for i := range held {
			held[i] = dialFrom(t, "127.0.0.1", addr)
			if code, err := held[i].get(); err != nil || code != http.StatusOK {
				t.Fatalf("held connection %d: %d %v", i, code, err)
			}
			waitIdle(t, cl, idle+i+1)
		}
		return held
	}
	for _, k := range fill(20, 0)[:19] {
		k.c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for cl.Stats().Open > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 1 open", cl.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	// One left from the first fill: it is now the longest idle.
	held := fill(19, 1)
	if code, err := dialFrom(t, "127.0.0.2", addr).get(); err != nil || code != http.StatusOK {
		t.Fatalf("newcomer: %d %v, want 200", code, err)
	}
	for i, k := range held {
		_ = k.c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := k.r.Peek(1); !isTimeout(err) {
			t.Errorf("connection %d of the second fill closed, want the one left from the first", i)
		}
	}
	if st := cl.Stats(); st.Reclaimed != 1 {
		t.Errorf("stats %+v, want 1 reclaimed", st)
	}
}
