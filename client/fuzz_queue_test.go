package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// sseEvents is the events a Server-Sent Events stream dispatches, read as
// the WHATWG specification says for the line endings Surge's server
// writes (LF, or CRLF): a blank line dispatches the data lines before it
// (joined by LF) under the last event name, if there was any data line;
// comments and other fields are skipped. Only whole events count (an
// event the stream ends in the middle of is dropped).
func sseEvents(stream string) (names, data []string) {
	var name string
	var buf []string
	lines := strings.Split(stream, "\n")
	lines = lines[:len(lines)-1] // the text after the last LF is no line
	for _, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			if buf != nil {
				names, data = append(names, name), append(data, strings.Join(buf, "\n"))
			}
			name, buf = "", nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			buf = append(buf, value)
		}
	}
	return names, data
}

// FuzzWatchQueueStream: whatever a queue event stream holds, WatchQueue
// returns (no panic, no hang) once it ends; it hands fn exactly the
// stream's events, in order, up to the first that is not a waiting
// position; it returns nil only after such an event, and an error event
// as an *APIError with its code.
func FuzzWatchQueueStream(f *testing.F) {
	for _, s := range []string{
		"retry: 3000\n\nevent: position\ndata: {\"status\":\"waiting\",\"position\":2}\n\n: heartbeat\n\nevent: admitted\ndata: {\"status\":\"admitted\",\"admitted\":true}\n\n",
		"event: position\r\ndata: {\"status\":\"waiting\"}\r\n\r\nevent: expired\r\ndata: {\"status\":\"expired\"}\r\n\r\n",
		"event: error\ndata: {\"error\":{\"code\":\"unavailable\",\"message\":\"redis\"}}\n\n",
		"event: position\ndata: {\"status\":\n\"waiting\"}\n\n",
		"data\n\n",
		"event: position\ndata: {\"status\":\"waiting\"}\n",
		"",
	} {
		f.Add(s)
	}
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := client.New(srv.URL, "")
	f.Fuzz(func(t *testing.T, stream string) {
		body = stream
		names, data := sseEvents(stream)
		var got []api.Queue
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.WatchQueue(ctx, "s", "ticket", func(q api.Queue) error { got = append(got, q); return nil })
		if ctx.Err() != nil {
			t.Fatalf("WatchQueue did not return once the stream ended: %v", err)
		}
		// What the client should have seen, event by event.
		i := 0
		for ; i < len(data); i++ {
			if names[i] == "error" {
				var e api.ErrorBody
				if json.Unmarshal([]byte(data[i]), &e) != nil {
					if err == nil || len(got) != i {
						t.Fatalf("malformed error event %q: %v after %d events", data[i], err, len(got))
					}
					return
				}
				var ae *client.APIError
				if !errors.As(err, &ae) || ae.Code != e.Error.Code || len(got) != i {
					t.Fatalf("error event %q: %v after %d events", data[i], err, len(got))
				}
				return
			}
			var q api.Queue
			if json.Unmarshal([]byte(data[i]), &q) != nil {
				if err == nil || len(got) != i {
					t.Fatalf("malformed event %q: %v after %d events", data[i], err, len(got))
				}
				return
			}
			if len(got) <= i || got[i].Status != q.Status || got[i].Ticket != q.Ticket {
				t.Fatalf("event %d %q: fn saw %+v", i, data[i], got)
			}
			if q.Status != client.QueueWaiting {
				if err != nil || len(got) != i+1 {
					t.Fatalf("last event %q: %v after %d events", data[i], err, len(got))
				}
				return
			}
		}
		if err == nil || len(got) != i {
			t.Fatalf("stream of %d events ended without a last one: %v, fn saw %d", len(data), err, len(got))
		}
	})
}
