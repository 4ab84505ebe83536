package http_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestReplayAfterTurn: README promises that a replay gets the first answer
// back. With a waiting room, the ticket was checked before the replay was
// looked up, so a buyer whose purchase committed in its turn but whose 201
// was lost (the connection cut) and who retried with the same
// Idempotency-Key once the turn had passed was refused 403 not_admitted
// "your turn to buy expired": its order was lost to it, as buyers cannot
// list their orders. Now such a replay answers the first 201; an expired
// ticket still buys nothing new, and a missing, forged or another buyer's
// ticket gets the waiting room's refusal as before.
func TestReplayAfterTurn(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"wr","name":"WR","stock":10,"per_user_limit":3,"starts_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":5}}`, ts(0)))
	alice := e.join(t, "wr", "alice", http.StatusCreated)
	bob := e.join(t, "wr", "bob", http.StatusCreated)
	e.clock.Advance(time.Second) // both admitted
	first := e.do(t, "POST", "/v1/sales/wr/purchases", `{"quantity":2}`, asUser(t, "alice"), idemKey("k1"), ticketHeader(alice.Ticket))
	wantStatus(t, first, http.StatusCreated)
	e.clock.Advance(time.Minute) // both turns have passed
	before := e.snapshot(t, "wr")

	tests := []struct {
		name       string
		user, body string
		opts       []opt
		status     int
		code       string // of an error
	}{
		{"the replay with the expired ticket", "alice", `{"quantity":2}`, []opt{idemKey("k1"), ticketHeader(alice.Ticket)}, http.StatusCreated, ""},
		{"the key with another quantity", "alice", `{"quantity":1}`, []opt{idemKey("k1"), ticketHeader(alice.Ticket)}, http.StatusUnprocessableEntity, "idempotency_mismatch"},
		{"a new key with the expired ticket", "alice", `{"quantity":1}`, []opt{idemKey("k2"), ticketHeader(alice.Ticket)}, http.StatusForbidden, "not_admitted"},
		{"no key with the expired ticket", "alice", `{"quantity":1}`, []opt{ticketHeader(alice.Ticket)}, http.StatusForbidden, "not_admitted"},
		{"the key without a ticket", "alice", `{"quantity":2}`, []opt{idemKey("k1")}, http.StatusForbidden, "not_admitted"},
		{"the key with a forged ticket", "alice", `{"quantity":2}`, []opt{idemKey("k1"), ticketHeader(alice.Ticket + "x")}, http.StatusForbidden, "not_admitted"},
		{"the key with another buyer's ticket", "alice", `{"quantity":2}`, []opt{idemKey("k1"), ticketHeader(bob.Ticket)}, http.StatusForbidden, "not_admitted"},
		{"another buyer's same key", "bob", `{"quantity":2}`, []opt{idemKey("k1"), ticketHeader(bob.Ticket)}, http.StatusForbidden, "not_admitted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sales/wr/purchases", tc.body, append([]opt{asUser(t, tc.user)}, tc.opts...)...)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				return
			}
			wantStatus(t, r, tc.status)
			if !bytes.Equal(r.body, first.body) || r.header.Get("Idempotent-Replayed") != "true" ||
				r.header.Get("Location") != first.header.Get("Location") {
				t.Fatalf("replay: body %s, Idempotent-Replayed %q, Location %q; want the first answer %s, true, %q",
					r.body, r.header.Get("Idempotent-Replayed"), r.header.Get("Location"), first.body, first.header.Get("Location"))
			}
		})
	}
	// Nothing above bought.
	e.wantUnchanged(t, "wr", before)
}
