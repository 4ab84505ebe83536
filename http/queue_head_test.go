package http_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestQueueStreamHEADEnds: HEAD of an event stream answers what GET
// would, without its body (docs/api.md), and ends there: it neither holds
// its connection nor keeps a stream slot of the buyer until admission or
// the stream's age. Each HEAD goes over a connection of its own, kept
// open, and the next request on it must be answered at once.
func TestQueueStreamHEADEnds(t *testing.T) {
	e := streamEnv(t, 0) // a buyer may hold 2 streams of a sale
	// Runs before the server's Close, which would wait for a stream a
	// HEAD left running.
	t.Cleanup(e.handler.CloseStreams)
	e.roomSale(t, "drop", "fifo")
	tk := e.join(t, "drop", "alice", http.StatusCreated).Ticket
	send := func(c *http.Client, method, path string, opts ...opt) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			o(req)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	for i, p := range []string{
		"/v1/sales/drop/queue/events",
		"/v1/sales/drop/queue/events?ticket=" + url.QueryEscape(tk),
		"/v1/sales/drop/queue",
	} {
		tr := &http.Transport{MaxConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		opts := []opt{header("Accept", "text/event-stream")}
		if i != 1 {
			opts = append(opts, ticketHeader(tk))
		}
		resp, err := send(c, "HEAD", p, opts...)
		if err != nil {
			t.Fatalf("HEAD %s: %v", p, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("HEAD %s: %d %v", p, resp.StatusCode, resp.Header)
		}
		// The same connection (one per host): answered only once the
		// HEAD's handler has returned.
		if resp, err := send(c, "GET", "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD %s kept its connection: the next request on it got %v, %v", p, resp, err)
		}
	}
	// The HEADs hold no slot: the buyer still opens both streams.
	for range 2 {
		resp, sse := openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(tk))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream after the HEADs: %d", resp.StatusCode)
		}
		if ev, err := sse.next(); err != nil || ev.name != "position" {
			t.Fatalf("stream after the HEADs: %+v, %v", ev, err)
		}
	}
}
