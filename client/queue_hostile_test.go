package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// A queue event stream is small events (a place is well under 1 KiB). A
// server or proxy that sends an endless event (data lines and no blank
// line, or one line and no newline) must not make WatchQueue buffer all
// of it and then hand it back quoted in its error: the client reads a
// bounded event and says it was too large.
func TestWatchQueueBoundsAnEvent(t *testing.T) {
	const size = 32 << 20 // what the hostile server sends as one event
	for _, tt := range []struct {
		name string
		line string // repeated up to size, then "\n\n"
	}{
		{"data lines with no blank line", "data: " + strings.Repeat("x", 1000) + "\n"},
		{"one line with no newline", strings.Repeat("x", 1024)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write([]byte("event: position\n"))
				for n := 0; n < size; n += len(tt.line) {
					if _, err := w.Write([]byte(tt.line)); err != nil {
						return // the client left
					}
				}
				w.Write([]byte("\n\n"))
			}))
			defer srv.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := client.New(srv.URL, "").WatchQueue(t.Context(), "s", "ticket", func(api.Queue) error { return nil })
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("WatchQueue returned nil on a malformed stream")
			}
			msg := err.Error()
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 || len(msg) > 4096 || !strings.Contains(msg, "larger than") {
				t.Errorf("a %d MiB event: WatchQueue allocated %d MiB and returned an error of %d bytes (%.200q…); want a bounded read and a short error saying the event is too large",
					size>>20, alloc>>20, len(msg), msg)
			}
		})
	}
}

// A place in a status this client does not know (a newer server's, or a
// proxy's mangled answer) is not admitted: WaitAdmitted keeps waiting at
// the polling pace (250 ms at the least), never reconnecting in a tight
// loop that floods the server.
func TestWaitAdmittedUnknownStatusPaced(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: position\ndata: {\"sale_id\":\"s\",\"ticket\":\"t\",\"status\":\"paused\"}\n\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sale_id":"s","ticket":"t","status":"paused"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := client.New(srv.URL, "").WaitAdmitted(ctx, api.Queue{SaleID: "s", Ticket: "t", Status: client.QueueWaiting})
	mu.Lock()
	n := requests
	mu.Unlock()
	if n > 12 {
		t.Errorf("status \"paused\" for 1 s: WaitAdmitted sent %d requests (err %v); want at most 12, a stream and a poll every 250 ms at the most", n, err)
	}
}

// A stream that ends with the server's error event was answered 200: the
// error says what the server said, not a made-up "HTTP 0".
func TestWatchQueueErrorEventSaysNoStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: error\ndata: {\"error\":{\"code\":\"sale_not_found\",\"message\":\"sale not found\"}}\n\n"))
	}))
	defer srv.Close()
	err := client.New(srv.URL, "").WatchQueue(t.Context(), "s", "ticket", func(api.Queue) error { return nil })
	if err == nil || err.Error() != "sale_not_found: sale not found" {
		t.Errorf("a stream's error event: %v; want \"sale_not_found: sale not found\"", err)
	}
}
