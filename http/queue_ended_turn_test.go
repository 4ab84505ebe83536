package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestPurchaseTurnAfterTheEnd: admission ends with the sale, so a place
// whose turn comes at or after ends_at is never admitted, and the queue
// object says so (its wait stops at the end, its window is empty there).
// A purchase with that place's ticket was told "your turn comes in about
// 5 s; retry after Retry-After", with a Retry-After past the end that led
// only to "the sale has ended before your turn came". It is told now that
// the turn comes after the sale ends, without a Retry-After.
func TestPurchaseTurnAfterTheEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":10,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute), ts(time.Minute+3*time.Second)))
	var last api.Queue
	for i := range 6 {
		last = e.join(t, "short", fmt.Sprintf("u%d", i), http.StatusCreated)
	}
	e.clock.Advance(time.Minute) // the start: u5's turn is 5 s away, the end 3 s
	q := mustQueue(t, e.do(t, "GET", "/v1/sales/short/queue", "", ticketHeader(last.Ticket)))
	if q.EstimatedWaitSeconds > 3 {
		t.Fatalf("u5's place at the start: %+v; want a wait no longer than until the end (3 s)", q)
	}
	r := e.do(t, "POST", "/v1/sales/short/purchases", "", asUser(t, "u5"), ticketHeader(q.Ticket))
	wantError(t, r, http.StatusForbidden, "not_admitted")
	var body struct{ Error struct{ Message string } }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if ra := r.header.Get("Retry-After"); ra != "" || !strings.Contains(body.Error.Message, "after the sale ends") {
		t.Errorf("a purchase whose turn comes after the end: Retry-After %q, %q; want no Retry-After, and that the turn comes after the sale ends",
			ra, body.Error.Message)
	}
}
