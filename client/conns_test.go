package client_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
)

// A Client is for concurrent use, but New built it on
// http.DefaultTransport, which keeps 2 idle connections per host: of 32
// goroutines calling at once, 30 closed their connection after every
// answer and dialled a new one for the next call, each leaving a socket
// in TIME_WAIT, until a busy program ran out of local ports ("cannot
// assign requested address"). A client from New keeps a connection per
// concurrent caller for reuse.
func TestConcurrentCallsReuseConnections(t *testing.T) {
	const callers, calls = 32, 10
	var dialled atomic.Int64
	s := newServer(t, serverOptions{connState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dialled.Add(1)
		}
	}})
	c := client.New(s.url, token)
	createSale(t, c, "hats", 5, 5)
	dialled.Store(0)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range calls {
				if _, err := c.Sale(t.Context(), "hats"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := dialled.Load(); n > 2*callers {
		t.Errorf("%d callers making %d calls each opened %d connections; want at most %d (one a caller, reused)", callers, calls, n, 2*callers)
	}
}

// Healthy and Ready closed the answer unread, and net/http closes a
// connection whose body was not read to its end: a program probing
// readiness every second dialled a new connection for every probe. The
// answer is read (within a bound) so that the connection is reused.
func TestProbesReuseTheConnection(t *testing.T) {
	var dialled atomic.Int64
	s := newServer(t, serverOptions{connState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dialled.Add(1)
		}
	}})
	c := client.New(s.url, "")
	for range 5 {
		if err := c.Healthy(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := dialled.Load(); n != 1 {
		t.Errorf("10 probes one after another opened %d connections; want 1, reused", n)
	}
}

// A queue stream ends after its last event (admitted, expired), and
// WatchQueue returned at that event, closing the answer before the
// server's end of it (the body's last chunk) came: net/http closes such a
// connection, so every buyer whose stream's end came a moment after its
// admission (a packet of its own, a proxy relaying it) dialled a new
// connection (behind TLS, a handshake too) for the purchase that follows,
// at the moment the drop's buyers buy at once. WatchQueue reads the
// stream's end, within a short bound, so that the purchase goes on the
// stream's connection.
func TestAdmissionKeepsTheStreamsConnection(t *testing.T) {
	var dialled atomic.Int64
	s := newServer(t, serverOptions{
		connState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				dialled.Add(1)
			}
		},
		// The stream's end comes 100 ms after its last event.
		wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				if strings.HasSuffix(r.URL.Path, "/queue/events") {
					time.Sleep(100 * time.Millisecond)
				}
			})
		},
	})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ann, q := annInRoom(ctx, t, admin, time.Now().Add(2*time.Second), 60)
	before := dialled.Load() // the join's connection is idle, kept for reuse
	got, err := ann.WaitAdmitted(ctx, q)
	if err != nil || got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted: %s, %v", got.Status, err)
	}
	if _, err := ann.Purchase(ctx, "room", client.PurchaseOptions{Ticket: got.Ticket}); err != nil {
		t.Fatalf("purchase with the admitted ticket: %v", err)
	}
	if n := dialled.Load() - before; n != 0 {
		t.Errorf("following the place on its stream until admitted, then buying, opened %d connections; "+
			"want 0: the join's connection followed the stream, then carried the purchase", n)
	}
}
