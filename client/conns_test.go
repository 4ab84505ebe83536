package client_test

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

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
