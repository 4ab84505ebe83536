package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// A caller of WatchQueue or Orders must tell a stream that merely ended
// or went silent (follow it again) from a refusal; the errors saying so
// were unexported, so only their wording told them apart. They are
// ErrStreamCut and ErrStreamSilent, for errors.Is.
func TestStreamErrorsAreExported(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/cut/queue/events"):
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: position\ndata: {\"status\":\"waiting\",\"position\":3}\n\n"))
		case strings.HasSuffix(r.URL.Path, "/queue/events"):
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case strings.HasSuffix(r.URL.Path, "/orders"):
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, token)
	client.SetStreamSilence(c, 300*time.Millisecond)
	nop := func(api.Queue) error { return nil }
	if err := c.WatchQueue(t.Context(), "cut", "a-ticket", nop); !errors.Is(err, client.ErrStreamCut) {
		t.Errorf("queue stream cut: %v, want ErrStreamCut", err)
	}
	if err := c.WatchQueue(t.Context(), "quiet", "a-ticket", nop); !errors.Is(err, client.ErrStreamSilent) {
		t.Errorf("queue stream silent: %v, want ErrStreamSilent", err)
	}
	if err := c.Orders(t.Context(), "quiet", func(api.Order) error { return nil }); !errors.Is(err, client.ErrStreamSilent) {
		t.Errorf("export silent: %v, want ErrStreamSilent", err)
	}
}
