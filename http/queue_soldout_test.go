package http_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestJoinSoldOutSale: a sale with a waiting room that had sold out (not
// ended) still took new buyers into its queue, answering 201 with a
// place, an estimated wait and, once their turn came, an admission whose
// every purchase was 409 sold_out: a wait for nothing. A new buyer's join
// is now refused 409 sold_out, as a purchase is, and so is retried once
// units come back (a hold cancelled or expired); a buyer who has a place
// keeps it, and joining again still answers it (200).
func TestJoinSoldOutSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"one","name":"One","stock":1,"starts_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute)))
	alice := e.join(t, "one", "alice", http.StatusCreated)
	e.join(t, "one", "bob", http.StatusCreated)
	e.clock.Advance(time.Minute)
	r := e.do(t, "POST", "/v1/sales/one/purchases", "", asUser(t, "alice"), ticketHeader(alice.Ticket))
	wantStatus(t, r, http.StatusCreated)
	order := mustOrder(t, r)

	r = e.do(t, "POST", "/v1/sales/one/queue", "", asUser(t, "carol"))
	wantError(t, r, http.StatusConflict, "sold_out")
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the refusal's Cache-Control %q, want no-store (a queue's errors say so)", cc)
	}
	// A place taken before the sell-out stays the buyer's.
	if q := e.join(t, "one", "bob", http.StatusOK); q.UserID != "bob" || q.Ticket == "" {
		t.Errorf("bob joining again in the sold-out sale: %+v; want his place", q)
	}

	// The unit comes back: carol may join.
	r = e.do(t, "POST", "/v1/orders/"+order.ID+"/cancel", "", asUser(t, "alice"))
	wantStatus(t, r, http.StatusOK)
	e.join(t, "one", "carol", http.StatusCreated)
}

// TestJoinPausedSoldOutSale: a sold-out sale that an operator paused reads
// paused, and the sold-out check of a join looked at that status only, so
// it took new buyers again, each waiting for a turn in a sale with no
// unit left. No unit left is sold_out for a join whatever the pause says;
// a buyer who has a place keeps it.
func TestJoinPausedSoldOutSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"one","name":"One","stock":1,"starts_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(time.Minute)))
	alice := e.join(t, "one", "alice", http.StatusCreated)
	e.join(t, "one", "bob", http.StatusCreated)
	e.clock.Advance(time.Minute)
	wantStatus(t, e.do(t, "POST", "/v1/sales/one/purchases", "", asUser(t, "alice"), ticketHeader(alice.Ticket)), http.StatusCreated)
	wantStatus(t, e.do(t, "PATCH", "/v1/sales/one", `{"paused":true}`, asAdmin()), http.StatusOK)

	wantError(t, e.do(t, "POST", "/v1/sales/one/queue", "", asUser(t, "carol")), http.StatusConflict, "sold_out")
	if q := e.join(t, "one", "bob", http.StatusOK); q.UserID != "bob" || q.Ticket == "" {
		t.Errorf("bob joining again in the paused, sold-out sale: %+v; want his place", q)
	}
}
