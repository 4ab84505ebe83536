package client_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// WatchQueue's bound on silence is for the server's (a dead connection:
// nothing, not even a heartbeat, for 35 s), not the caller's: it also ran
// while fn took its time over an event, so a caller slower than the bound
// (a UI busy, a channel not read) had a live stream ended as "silent for
// longer than the server's heartbeat: the connection is dead", its
// admission, already sent, unread. The order export never counted fn's
// time; the queue stream now does not either.
func TestWatchQueueSlowCallerIsNotSilence(t *testing.T) {
	const silence = 2 * time.Second
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	client.SetStreamSilence(admin, silence)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Admitted in 2 s, while fn still takes its 3 s over the position
	// event: the admission waits in the connection for fn to return.
	start := time.Now().Add(2 * time.Second)
	ann, q := annInRoom(ctx, t, admin, start, 60)
	var seen []string
	began := time.Now()
	err := ann.WatchQueue(ctx, "room", q.Ticket, func(u api.Queue) error {
		seen = append(seen, u.Status)
		if u.Status == client.QueueWaiting {
			time.Sleep(silence + time.Second)
		}
		return nil
	})
	if len(seen) == 0 || seen[0] != client.QueueWaiting {
		t.Fatalf("events %v (err %v): the stream opened after the admission; the test needs a position event first", seen, err)
	}
	if err != nil || seen[len(seen)-1] != client.QueueAdmitted {
		t.Fatalf("a caller taking %v over a position event, the stream bounded at %v of silence: events %v, %v after %v; "+
			"want the admission (sent at %s), the caller's time not counted as the server's silence",
			silence+time.Second, silence, seen, err, time.Since(began).Round(time.Millisecond), start.UTC().Format("15:04:05.000"))
	}
}

// A queue stream whose server (or proxy) never answers is as dead as one
// that stops mid-stream: WatchQueue bounds the wait for the answer's
// header by the same silence, and says the stream went silent, rather
// than waiting for as long as the caller's context allows.
func TestWatchQueueSilentBeforeTheHeader(t *testing.T) {
	const silence = 300 * time.Millisecond
	s := newServer(t, serverOptions{wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/queue/events") {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	admin := client.New(s.url, token)
	client.SetStreamSilence(admin, silence)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	began := time.Now()
	err := admin.WatchQueue(ctx, "room", "a-ticket", func(api.Queue) error { return nil })
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "queue stream silent") {
		t.Fatalf("a queue stream never answered: %v after %v; want, within about %v, an error saying the stream went silent",
			err, time.Since(began).Round(time.Millisecond), silence)
	}
}
