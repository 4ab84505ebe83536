package client_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/servicetest"
)

// A read of the place that outlasts the client's per-request timeout (the
// network to the server stalled for a moment, a server slow under a
// drop's load) ended WaitAdmitted with "Client.Timeout exceeded", giving
// up a place whose ticket was as good as before, though a refused
// connection or a proxy's 504 of the same read did not end it. The wait
// now goes on through such a read, as through any other failure that
// passes, within the retry policy's MaxElapsed.
func TestWaitAdmittedSurvivesASlowRead(t *testing.T) {
	const timeout = 2 * time.Second
	var proxy *servicetest.Proxy
	var refused, stalled atomic.Bool
	s := newServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/v1/sales/room/queue/events" && refused.CompareAndSwap(false, true):
				// The first stream is refused by a node going away: the
				// client reads the place before following it again.
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error":{"code":"unavailable","message":"shutting down"}}`))
				return
			case r.Method == http.MethodGet && r.URL.Path == "/v1/sales/room/queue" && stalled.CompareAndSwap(false, true):
				// Its read of the place: the network stalls, both ways,
				// for twice the client's timeout.
				proxy.Pause()
				time.AfterFunc(2*timeout, proxy.Resume)
			}
			next.ServeHTTP(w, r)
		})
	}})
	proxy = servicetest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	admin := client.New("http://"+proxy.Addr, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now().Add(4 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 60)
	ann.HTTP = &http.Client{Timeout: timeout, Transport: admin.HTTP.Transport}
	began := time.Now()
	got, err := ann.WaitAdmitted(ctx, q)
	if !stalled.Load() {
		t.Fatalf("WaitAdmitted: %s, %v; the test needs it to read the place once", got.Status, err)
	}
	if err != nil || got.Status != client.QueueAdmitted {
		t.Fatalf("WaitAdmitted, one read of the place outlasting the client's %v timeout (the network stalled for %v): "+
			"%s, %v after %v; want the admission at %s, the ticket as good as before", timeout, 2*timeout, got.Status, err,
			time.Since(began).Round(time.Millisecond), start.UTC().Format("15:04:05"))
	}
}
