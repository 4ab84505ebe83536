package http_test

import (
	"net/http"
	"testing"

	surgehttp "github.com/surgehq/surge/http"
)

// FuzzTicketHeader sends any Waiting-Room-Ticket to a queue read and to a
// purchase in a sale with a waiting room. The test clock stands still, so
// the server issues alice exactly one ticket text: that one reads her
// place and lets her buy; anything else is a 403 that changes nothing.
func FuzzTicketHeader(f *testing.F) {
	e := newEnv(f, envOptions{noServer: true})
	if r := e.serve("POST", "/v1/sales", []byte(`{"id":"wt","name":"Tickets","stock":1000000,
		"waiting_room":{"admit_per_second":1000,"order":"fifo","ticket_seconds":3600}}`), asAdmin()); r.status != http.StatusCreated {
		f.Fatalf("create sale: %v", r)
	}
	r := e.serve("POST", "/v1/sales/wt/queue", nil, asUser(f, "alice"))
	q, err := parseQueue(r.body)
	if r.status != http.StatusCreated || err != nil || !q.Admitted {
		f.Fatalf("join: %v (%v)", r, err)
	}
	genuine := q.Ticket
	f.Add(genuine)
	f.Add(genuine[:len(genuine)-1])
	f.Add(genuine + "A")
	f.Fuzz(func(t *testing.T, ticket string) {
		withTicket := func(r *http.Request) { r.Header[surgehttp.TicketHeader] = []string{ticket} }
		read := e.serve("GET", "/v1/sales/wt/queue", nil, withTicket)
		buy := e.serve("POST", "/v1/sales/wt/purchases", nil, asUser(t, "alice"), withTicket)
		if ticket != genuine {
			wantError(t, read, http.StatusForbidden, "invalid_ticket")
			wantError(t, buy, http.StatusForbidden, "not_admitted")
			return
		}
		if got, err := parseQueue(read.body); read.status != http.StatusOK || err != nil || got.Ticket != genuine {
			t.Fatalf("the genuine ticket: %v (%v)", read, err)
		}
		// 201 the first time, then alice holds her one unit.
		if buy.status != http.StatusCreated && buy.status != http.StatusConflict {
			t.Fatalf("purchase with the genuine ticket: %v", buy)
		}
	})
}
