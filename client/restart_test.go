package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/servicetest"
)

// A server restarting (a rolling restart, its address refusing
// connections for a moment) failed every call at once with "connection
// refused", reads and keyed purchases included, which are safe to send
// again. They are now retried within the retry policy; a cancel (not
// safe twice) is retried only after a refused connection, which sent
// nothing.
func TestCallsRetriedAcrossARestart(t *testing.T) {
	s := newServer(t, serverOptions{})
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	c := client.New("http://"+proxy.Addr, token)
	createSale(t, c, "s", 10, 5)
	ann := c.AsUser("ann")
	p, err := ann.Purchase(t.Context(), "s", client.PurchaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"order read": func() error { _, err := ann.Order(t.Context(), p.Order.ID); return err },
		"keyed purchase": func() error {
			_, err := ann.Purchase(t.Context(), "s", client.PurchaseOptions{IdempotencyKey: p.IdempotencyKey})
			return err
		},
		"cancel": func() error { _, err := ann.CancelOrder(t.Context(), p.Order.ID); return err },
	} {
		proxy.Cut()
		// Not a kept connection the cut closed: a cancel sent on one
		// may have reached the server, and is rightly not sent again.
		c.HTTP.CloseIdleConnections()
		go func() { time.Sleep(300 * time.Millisecond); proxy.Restore() }()
		if err := call(); err != nil {
			t.Errorf("%s while the server is away for 300 ms: %v; want it retried", name, err)
		}
		time.Sleep(400 * time.Millisecond) // restored
	}
}

// A proxy's 502 or 504 (the server behind it restarting, or slow) ended
// a read at once; a read is now retried, a cancel is not (its first
// attempt may have taken effect behind the proxy).
func TestProxyGatewayErrorsRetriedForReads(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		var armed atomic.Bool
		f := &fault{plan: []step{{status: status, code: "gateway"}, {status: status, code: "gateway"}}}
		f.match = func(r *http.Request) bool { return armed.Load() && strings.HasPrefix(r.URL.Path, "/v1/orders/") }
		s := newServer(t, serverOptions{wrap: f.wrap})
		c := client.New(s.url, token)
		createSale(t, c, "s", 10, 5)
		ann := c.AsUser("ann")
		p, err := ann.Purchase(t.Context(), "s", client.PurchaseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		if _, err := ann.Order(t.Context(), p.Order.ID); err != nil || len(f.arrivals()) != 3 {
			t.Errorf("order read behind two %ds: %v after %d attempts; want it read at the third", status, err, len(f.arrivals()))
		}
		f.mu.Lock()
		f.plan = []step{{status: status, code: "gateway", through: true}}
		f.mu.Unlock()
		n := len(f.arrivals())
		var ae *client.APIError
		if _, err := ann.CancelOrder(t.Context(), p.Order.ID); !errors.As(err, &ae) || ae.Status != status || len(f.arrivals()) != n+1 {
			t.Errorf("cancel answered %d: %v after %d attempts; want the %d, sent once", status, err, len(f.arrivals())-n, status)
		}
	}
}

// A buyer following its place while the server restarts behind a proxy
// (its stream cut, connections refused for 6 s): WaitAdmitted failed with
// "connection refused" at its first read of the place, giving up the
// buyer's turn. It now waits through the restart and returns the
// admission.
func TestWaitAdmittedAcrossARestart(t *testing.T) {
	s := newServer(t, serverOptions{})
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New("http://"+proxy.Addr, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// The server is away from 0.3 s after the stream opens to 6.3 s,
	// over the place's read at the estimated admission (4 s).
	start := time.Now().Add(4 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 60)
	onceStreaming(s, func() {
		proxy.Cut()
		time.Sleep(6 * time.Second)
		proxy.Restore()
	})
	got, err := ann.WaitAdmitted(ctx, q)
	if err != nil || got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted across a 6 s restart: %+v, %v; want the admission at %s", got, err, start.Format(time.RFC3339))
	}
}

// A stream refused with 503 unavailable (the node shutting down; the
// next request reaches another) made WaitAdmitted poll for the rest of
// the wait, as after the streams' limit (503 overloaded). It now follows
// the stream again after reading the place once. So it does after a
// proxy's own 503 (its page, not Surge's error: no backend up for a
// moment, a rolling restart behind an ingress), which was taken for the
// streams' limit, and after a proxy's own 429 (its page: a rate limit of
// the proxy's, not Surge's 429 rate_limited), taken for it as well.
func TestWaitAdmittedStreamsAgainAfterUnavailable(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refusal step
	}{
		{"Surge's 503 unavailable", step{status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: "1"}},
		{"a proxy's 503 page", step{status: http.StatusServiceUnavailable, page: nginx503}},
		// A proxy rate-limiting the client (nginx's limit_req with
		// limit_req_status 429), not Surge's streams limit (429
		// rate_limited in its error shape).
		{"a proxy's 429 page", step{status: http.StatusTooManyRequests, page: nginx429}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fault{plan: []step{tt.refusal},
				match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/queue/events") }}
			s := newServer(t, serverOptions{wrap: f.wrap})
			admin := client.New(s.url, token)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			// Past the longest poll (10 s): the place is read once, waiting, and
			// then followed.
			start := time.Now().Add(12 * time.Second)
			ann, q := annInRoom(ctx, t, admin, start, 60)
			got, err := ann.WaitAdmitted(ctx, q)
			if err != nil || got.Status != client.QueueAdmitted {
				t.Fatalf("WaitAdmitted: %+v, %v", got, err)
			}
			if n := len(f.arrivals()); n < 2 {
				t.Errorf("%d stream requests; want the stream followed again after one refused with %s", n, tt.name)
			}
			if n := s.count("GET /v1/sales/room/queue"); n > 2 {
				t.Errorf("%d reads of the place; want at most 2: the stream, not polling, follows it", n)
			}
		})
	}
}

// nginx503 is the page a stock nginx (an ingress, not Surge's edge, which
// answers Surge's error shape) answers 503 with: no upstream up.
const nginx503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n" +
	"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// nginx429 is the page a stock nginx answers 429 with (limit_req_status
// 429).
const nginx429 = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n" +
	"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// A queue stream whose connection is lost mid-stream (its node killed, a
// proxy in between restarted) ended before its last event as much as one
// the server ends, and the ticket is as good as before; yet WatchQueue
// said "read queue stream: unexpected EOF", which is not ErrStreamCut, so
// a caller following the documented errors.Is took the commonest cut of
// all for a failure and stopped following the place.
func TestWatchQueueConnectionLostIsCut(t *testing.T) {
	s := newServer(t, serverOptions{})
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Admitted in a minute: the stream's first event is a position.
	_, q := annInRoom(ctx, t, admin, time.Now().Add(time.Minute), 60)
	ann := client.New("http://"+proxy.Addr, "").AsUser("ann")
	var seen []string
	err := ann.WatchQueue(ctx, "room", q.Ticket, func(u api.Queue) error {
		seen = append(seen, u.Status)
		proxy.Cut() // the connection is lost once the place came
		return nil
	})
	if len(seen) != 1 || seen[0] != client.QueueWaiting {
		t.Fatalf("events %v (err %v); the test needs the stream's position event before the cut", seen, err)
	}
	if ctx.Err() != nil || !errors.Is(err, client.ErrStreamCut) {
		t.Errorf("queue stream whose connection was lost after its first event: %v; want ErrStreamCut (follow the place again)", err)
	}
}

// A rolling restart takes the nodes down one after another: each cuts the
// buyer's queue stream and fails the read of the place that follows, and
// in between the stream follows the place again on a node already back.
// WaitAdmitted measured the outage from the first failed read and only a
// successful poll ended it, never the stream's events, so the second
// node's restart, however brief, ended the wait ("waiting room place
// unreadable") once the first lay MaxElapsed back, though the place had
// been read all along. Each restart here is one failed read long, well
// within MaxElapsed; the sale is paused meanwhile (as an operator may for
// a maintenance), so the buyer's turn waits for the resume.
func TestWaitAdmittedAcrossARollingRestart(t *testing.T) {
	s := newServer(t, serverOptions{})
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Paused as it starts, then joined by four buyers admitted one a
	// second: ann, the fourth, stays about 4 s from her turn until the
	// resume, which is how long the client waits between a cut and the
	// read of her place.
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("room"), Name: new("Room"), Stock: new(int64(10)),
		WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(int64(1)), Policy: new("fifo"), TicketSeconds: new(int64(60))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateSale(ctx, "room", api.SalePatch{Paused: new(true)}); err != nil {
		t.Fatal(err)
	}
	var q api.Queue
	for _, u := range []string{"a", "b", "c", "ann"} {
		var err error
		if q, err = admin.AsUser(u).JoinQueue(ctx, "room"); err != nil {
			t.Fatal(err)
		}
	}
	if q.Status != client.QueueWaiting || q.EstimatedWaitSeconds < 3 {
		t.Fatalf("ann's place %+v; the test needs her waiting seconds away", q)
	}

	const restarts = 2
	var mu sync.Mutex
	cuts, outages := 0, 0
	restarted := make(chan struct{})
	ann := client.New("http://"+proxy.Addr, "").AsUser("ann")
	// One send a read, so that a restart is exactly one failed read, and
	// a bound (2 s) shorter than the wait between two of them (about 4 s).
	ann.Retry = client.RetryPolicy{MaxAttempts: 1, MaxElapsed: 2 * time.Second}
	base := ann.HTTP.Transport
	ann.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		res, err := base.RoundTrip(r)
		switch {
		case err == nil && strings.HasSuffix(r.URL.Path, "/queue/events"):
			mu.Lock()
			restart := cuts < restarts
			if restart {
				cuts++
			}
			mu.Unlock()
			if restart { // the node goes once the stream has sent the place
				res.Body = &afterEvent{ReadCloser: res.Body, then: proxy.Cut}
			}
		case err != nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/queue"):
			// The read of the place failed: the node is back before
			// the client's next request.
			proxy.Restore()
			mu.Lock()
			if outages++; outages == restarts {
				close(restarted)
			}
			mu.Unlock()
		}
		return res, err
	})}
	go func() {
		select {
		case <-restarted:
			if _, err := admin.UpdateSale(ctx, "room", api.SalePatch{Paused: new(false)}); err != nil && ctx.Err() == nil {
				t.Errorf("resume: %v", err)
			}
		case <-ctx.Done():
		}
	}()
	got, err := ann.WaitAdmitted(ctx, q)
	mu.Lock()
	n := outages
	mu.Unlock()
	if n != restarts {
		t.Fatalf("%d restarts seen (WaitAdmitted: %s, %v); the test needs %d", n, got.Status, err, restarts)
	}
	if err != nil || got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted across %d restarts of one failed read each, the stream following the place in between: %s, %v; "+
			"want the admission after the resume", restarts, got.Status, err)
	}
}

// afterEvent is a queue stream's body that calls then once it has passed
// on a whole event (its data and the blank line ending it).
type afterEvent struct {
	io.ReadCloser
	seen []byte
	then func()
}

func (b *afterEvent) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.then != nil {
		b.seen = append(b.seen, p[:n]...)
		if i := bytes.Index(b.seen, []byte("\ndata:")); i >= 0 && bytes.Contains(b.seen[i:], []byte("\n\n")) {
			b.then()
			b.then = nil
		}
	}
	return n, err
}
