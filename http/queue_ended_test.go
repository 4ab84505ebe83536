package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestQueueOfEndedSale: docs/api.md says admission ends with the sale.
// Once a sale had ended, a read of a place still answered "waiting" with a
// position, an estimated wait and a Retry-After, and an admitted buyer's
// read "admitted", for a sale that sells nothing any more; its event
// stream went on until the buyer's slot opened (to announce an admission
// that cannot buy) or for its 15 minutes. Now every place of an ended
// sale reads expired, position 0, no wait, as an admission over for good,
// and a stream ends with its expired event.
func TestQueueOfEndedSale(t *testing.T) {
	e := streamEnv(t, 0)
	// Starts in a minute, ends 3 s later; one buyer a second, 30 s each.
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute), ts(time.Minute+3*time.Second)))
	const n = 10
	tickets := make([]string, n)
	for i := range n {
		tickets[i] = e.join(t, "short", fmt.Sprintf("u%d", i), http.StatusCreated).Ticket
	}
	// u9's turn comes 6 s after the end: its stream is open at the end.
	_, sse := openStream(t, e, "/v1/sales/short/queue/events", ticketHeader(tickets[n-1]))
	if ev, err := sse.next(); err != nil || ev.name != "position" {
		t.Fatalf("first event: %+v, %v", ev, err)
	}

	e.clock.Advance(time.Minute + 4*time.Second) // ended a second ago
	for i := range n {
		r := e.do(t, "GET", "/v1/sales/short/queue", "", ticketHeader(tickets[i]))
		wantStatus(t, r, http.StatusOK)
		q := mustQueue(t, r)
		if q.Status != "expired" || pos(q) != 0 || q.Admitted || q.EstimatedWaitSeconds != 0 || r.header.Get("Retry-After") != "" {
			t.Fatalf("u%d's place after the end: status %s, position %d, admitted %t, wait %d s, Retry-After %q; want expired, 0, false, 0 s, none",
				i, q.Status, pos(q), q.Admitted, q.EstimatedWaitSeconds, r.header.Get("Retry-After"))
		}
	}

	// The stream ends with expired (a position event may have come from
	// the advance first, on a loaded machine: never one after it).
	for {
		ev, err := nextWithin(sse, 30*time.Second)
		if err != nil {
			t.Fatalf("the stream ended without an expired event: %v", err)
		}
		if ev.name == "expired" {
			break
		}
		if ev.name != "position" {
			t.Fatalf("after the end: event %q %s, want expired", ev.name, ev.data)
		}
	}
	if ev, err := nextWithin(sse, 30*time.Second); err != io.EOF {
		t.Fatalf("after the expired event: %+v, %v; want the stream's end", ev, err)
	}
	// A stream opened after the end says expired at once and ends.
	_, sse = openStream(t, e, "/v1/sales/short/queue/events", ticketHeader(tickets[n-1]))
	if ev, err := nextWithin(sse, 30*time.Second); err != nil || ev.name != "expired" {
		t.Fatalf("a stream opened after the end: first event %+v, %v; want expired", ev, err)
	}
}

// nextWithin is the stream's next event, or an error if none comes within d
// (heartbeats do not count): a stream that waits for nothing must fail the
// test, not hang it. The test's cleanup closes the stream.
func nextWithin(sse *sseReader, d time.Duration) (sseEvent, error) {
	type result struct {
		ev  sseEvent
		err error
	}
	c := make(chan result, 1)
	go func() {
		ev, err := sse.next()
		c <- result{ev, err}
	}()
	select {
	case r := <-c:
		return r.ev, r.err
	case <-time.After(d):
		return sseEvent{}, fmt.Errorf("no event within %s", d)
	}
}

// TestPurchaseOfEndedSaleNotAdmitted: a buyer whose turn had not come when
// the sale ended was refused 403 not_admitted "your turn comes in about
// N s; retry after Retry-After", with that Retry-After: an invitation to
// retry a sale that sells nothing any more. The refusal now says the sale
// has ended, with no Retry-After. A buyer admitted when it ended gets the
// purchase's 409 ended, as before.
func TestPurchaseOfEndedSaleNotAdmitted(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute), ts(time.Minute+3*time.Second)))
	first := e.join(t, "short", "u0", http.StatusCreated)
	var last api.Queue
	for i := 1; i < 10; i++ {
		last = e.join(t, "short", fmt.Sprintf("u%d", i), http.StatusCreated)
	}
	e.clock.Advance(time.Minute + 4*time.Second) // ended a second ago; u9's turn is 5 s away
	r := e.do(t, "POST", "/v1/sales/short/purchases", "", asUser(t, "u9"), ticketHeader(last.Ticket))
	wantError(t, r, http.StatusForbidden, "not_admitted")
	var got apiError
	_ = json.Unmarshal(r.body, &got)
	if ra := r.header.Get("Retry-After"); ra != "" || !strings.Contains(got.Error.Message, "ended") {
		t.Errorf("a buyer not admitted by the end: Retry-After %q, message %q; want none, and a message saying the sale ended", ra, got.Error.Message)
	}
	r = e.do(t, "POST", "/v1/sales/short/purchases", "", asUser(t, "u0"), ticketHeader(first.Ticket))
	wantError(t, r, http.StatusConflict, "ended")
}

// TestQueueMetricsOfEndedSale: surge_waiting_room_length and
// surge_waiting_room_admitted_total of an ended sale went on as if it
// sold: the slots kept opening after the end, so the admitted counter
// rose by admit_per_second into a sale that sells nothing, and the length
// counted buyers waiting for those admissions until the archive. Once
// the sale has ended nobody waits (every place is expired), and the
// admitted are those whose turn came before the end.
func TestQueueMetricsOfEndedSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Starts in a minute, ends 3 s later: slots 0, 1 and 2 open before it.
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute), ts(time.Minute+3*time.Second)))
	for i := range 10 {
		e.join(t, "short", fmt.Sprintf("u%d", i), http.StatusCreated)
	}
	for _, after := range []time.Duration{time.Second, time.Hour} {
		e.clock.Set(epoch.Add(time.Minute + 3*time.Second + after))
		var found bool
		for _, f := range e.eng.SaleFigures(t.Context()) {
			if f.Sale != "short" {
				continue
			}
			found = true
			if !f.WaitingRoom || f.Waiting != 0 || f.Admitted != 3 {
				t.Fatalf("%v after the end: waiting room %t, waiting %d, admitted %d; want true, 0, 3", after, f.WaitingRoom, f.Waiting, f.Admitted)
			}
		}
		if !found {
			t.Fatal("no figures for the sale")
		}
	}
}
