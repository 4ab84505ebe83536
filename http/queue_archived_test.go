package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestQueueOfArchivedSale: api/openapi.yaml answers a queue endpoint of an
// archived sale 404 sale_not_found, as a purchase in it ("No such sale (for
// a purchase or a queue, also an archived one)"). The queue endpoints read
// the sale with the archived ones and went on: a join answered 409 ended,
// and a place's read 403 invalid_ticket, telling the buyer that the
// waiting room had restarted and to join again (which answered 409 ended).
func TestQueueOfArchivedSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"gone","name":"Gone","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":300}}`, ts(-time.Hour), ts(time.Minute)))
	alice := e.join(t, "gone", "alice", http.StatusCreated)
	e.clock.Advance(2 * time.Minute)
	wantStatus(t, e.do(t, "POST", "/v1/sales/gone/archive", "", asAdmin()), http.StatusOK)

	for _, c := range []struct {
		name, method, path string
		opts               []opt
	}{
		{"a join", "POST", "/v1/sales/gone/queue", []opt{asUser(t, "bob")}},
		{"a join again", "POST", "/v1/sales/gone/queue", []opt{asUser(t, "alice")}},
		{"a read of the place", "GET", "/v1/sales/gone/queue", []opt{ticketHeader(alice.Ticket)}},
		{"a read without a ticket", "GET", "/v1/sales/gone/queue", nil},
		{"a stream", "GET", "/v1/sales/gone/queue/events", []opt{ticketHeader(alice.Ticket)}},
		{"a stream by the query", "GET", "/v1/sales/gone/queue/events?ticket=" + url.QueryEscape(alice.Ticket), nil},
		{"a stream on the queue's path", "GET", "/v1/sales/gone/queue",
			[]opt{ticketHeader(alice.Ticket), header("Accept", "text/event-stream")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, c.path, "", c.opts...)
			wantError(t, r, http.StatusNotFound, "sale_not_found")
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

// TestQueueEventsOfSaleArchived: a stream following a place in a sale
// that is archived meanwhile ends with an error event saying
// sale_not_found, as every queue endpoint answers the sale then. It said
// invalid_ticket instead: "the ticket was issued before the waiting room
// restarted ... join again", and a join answered 409 ended.
func TestQueueEventsOfSaleArchived(t *testing.T) {
	e := newEnv(t, envOptions{noServer: true})
	e.handler.SetStreamTiming(5*time.Millisecond, 50*time.Millisecond)
	// The stream is held after its first look, until the sale is
	// archived: it would otherwise see the sale ended first, and end
	// with its expired event (TestQueueOfEndedSale).
	looked, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.handler.OnStreamTick(func() {
		once.Do(func() {
			close(looked)
			<-resume
		})
	})
	e.srv = httptest.NewServer(e.handler)
	var resumed sync.Once
	t.Cleanup(func() { resumed.Do(func() { close(resume) }) }) // a failure before the archive
	// Starts in a minute, ends two seconds later; one buyer a second.
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute), ts(time.Minute+2*time.Second)))
	var last api.Queue
	for i := range 5 {
		last = e.join(t, "short", fmt.Sprintf("u%d", i), http.StatusCreated)
	}
	_, sse := openStream(t, e, "/v1/sales/short/queue/events", ticketHeader(last.Ticket))
	if ev, err := sse.next(); err != nil || ev.name != "position" {
		t.Fatalf("first event: %+v, %v", ev, err)
	}
	<-looked
	e.clock.Advance(time.Minute + 3*time.Second) // ended; u4's turn is a second away
	wantStatus(t, e.do(t, "POST", "/v1/sales/short/archive", "", asAdmin()), http.StatusOK)
	resumed.Do(func() { close(resume) })
	for {
		ev, err := sse.next()
		if err != nil {
			t.Fatalf("the stream ended without an error event: %v", err)
		}
		if ev.name == "position" {
			continue // the clock's advance, seen before the archive
		}
		var body api.ErrorBody
		if ev.name != "error" || json.Unmarshal([]byte(ev.data), &body) != nil || body.Error.Code != "sale_not_found" {
			t.Fatalf("after the archive: event %q %s, want an error event sale_not_found", ev.name, ev.data)
		}
		return
	}
}
