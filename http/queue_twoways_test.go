package http_test

import (
	"io"
	"net/http"
	"net/url"
	"testing"
)

// TestQueueEventsTicketSentTwoWays: a queue stream takes its ticket from
// the Waiting-Room-Ticket header or, for EventSource, the ticket query
// parameter. Sent both ways with two different tickets, the stream
// followed the header's and dropped the other unseen: whose place it was
// (another buyer's, a ticket of a lost queue) depended on a rule written
// nowhere. Two tickets are refused, as two headers are (403
// invalid_ticket); the same ticket both ways is one ticket.
func TestQueueEventsTicketSentTwoWays(t *testing.T) {
	e := streamEnv(t, 0)
	e.roomSale(t, "drop", "fifo")
	alice := e.join(t, "drop", "alice", http.StatusCreated)
	bob := e.join(t, "drop", "bob", http.StatusCreated)
	for _, c := range []struct {
		name, path   string
		header, qry  string
		accept       bool
		status       int
		code, wantOf string
	}{
		{"events, two tickets", "/v1/sales/drop/queue/events", bob.Ticket, alice.Ticket, false, 403, "invalid_ticket", ""},
		{"events, two tickets, the other way", "/v1/sales/drop/queue/events", alice.Ticket, bob.Ticket, false, 403, "invalid_ticket", ""},
		{"status as a stream, two tickets", "/v1/sales/drop/queue", bob.Ticket, alice.Ticket, true, 403, "invalid_ticket", ""},
		{"events, one ticket both ways", "/v1/sales/drop/queue/events", bob.Ticket, bob.Ticket, false, 200, "", "bob"},
		{"status as a stream, one ticket both ways", "/v1/sales/drop/queue", alice.Ticket, alice.Ticket, true, 200, "", "alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []opt{ticketHeader(c.header)}
			if c.accept {
				opts = append(opts, header("Accept", "text/event-stream"))
			}
			resp, sse := openStream(t, e, c.path+"?ticket="+url.QueryEscape(c.qry), opts...)
			if resp.StatusCode != c.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, c.status)
			}
			if c.status != http.StatusOK {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				wantError(t, response{status: resp.StatusCode, header: resp.Header, body: b}, c.status, c.code)
				return
			}
			ev, err := sse.next()
			if err != nil {
				t.Fatal(err)
			}
			q, err := parseQueue([]byte(ev.data))
			if err != nil || q.UserID != c.wantOf {
				t.Fatalf("the stream follows %+v (%v), want %s's place", q, err, c.wantOf)
			}
		})
	}
}
