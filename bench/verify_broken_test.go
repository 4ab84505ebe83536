package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// Broken inputs: each input breaks a guarantee, so the verdict must fail.

func wantFail(t *testing.T, v *Verdict) {
	t.Helper()
	if v.OK {
		t.Errorf("verdict passes a broken guarantee: %s\nchecks: %+v", VerdictLine(v), v.Checks)
	}
}

// A 201 whose body names no order (codeBadBody) is a confirmation the run
// cannot hold against the export: the order it announced may not exist.
// Here half the 201s had such bodies, the server wrote no order for them,
// and the export is otherwise clean.
func TestVerifyRunFailsUncheckable201s(t *testing.T) {
	sale := api.Sale{ID: "s", Stock: 10, Remaining: 5, PerUserLimit: 1}
	var orders []api.Order
	var confirmed []Confirmation
	for _, id := range []string{"o1", "o2", "o3", "o4", "o5"} {
		orders = append(orders, api.Order{ID: id, SaleID: "s", UserID: id, Quantity: 1, Status: "reserved", IdempotencyKey: "k"})
		confirmed = append(confirmed, Confirmation{OrderID: id, UserID: id, Key: "k", Quantity: 1})
	}
	r := &Result{
		Completed: 10,
		Status:    map[int]int64{201: 10},
		Codes:     map[string]int64{codeReserved: 5, codeBadBody: 5},
	}
	wantFail(t, VerifyRun(r, sale, orders, confirmed, exportedAt))
}

// Three buyers were answered 201 for one unit each of a stock of 2: as the
// buyers see it the sale oversold. The server hides it by exporting the
// third order as cancelled (nobody cancels in a bench run) or as expired
// long before its hold ends; remaining agrees with the two live orders.
func TestVerifyConfirmedOrderNotLive(t *testing.T) {
	for _, status := range []string{"cancelled", "expired"} {
		t.Run(status, func(t *testing.T) {
			sale := api.Sale{ID: "s", Stock: 2, Remaining: 0, PerUserLimit: 1, HoldSeconds: 900}
			mk := func(id, st string) api.Order {
				return api.Order{ID: id, SaleID: "s", UserID: id, Quantity: 1, Status: st, IdempotencyKey: "k",
					CreatedAt: "2026-12-05T17:00:00Z", ExpiresAt: "2026-12-05T17:15:00Z"}
			}
			orders := []api.Order{mk("a", "reserved"), mk("b", "reserved"), mk("c", status)}
			confirmed := []Confirmation{
				{OrderID: "a", UserID: "a", Key: "k", Quantity: 1},
				{OrderID: "b", UserID: "b", Key: "k", Quantity: 1},
				{OrderID: "c", UserID: "c", Key: "k", Quantity: 1},
			}
			wantFail(t, Verify(sale, orders, confirmed, exportedAt))
		})
	}
}

// Malformed orders must be flagged, not skipped: an order of 0 or fewer
// units or with a status the checker does not know, left out of the units
// counted, could hide an oversell.
func TestVerifyMalformedOrders(t *testing.T) {
	live := func(id string) api.Order {
		return api.Order{ID: id, SaleID: "s", UserID: id, Quantity: 1, Status: "reserved", IdempotencyKey: "k"}
	}
	tests := map[string]api.Order{
		// Three buyers hold a unit each of a stock of 2; a -1 order brings
		// the running count back to 2.
		"negative quantity": {ID: "neg", SaleID: "s", UserID: "z", Quantity: -1, Status: "reserved", IdempotencyKey: "k"},
		// The third unit is in an order of a status the checker does not
		// know, so it is not counted as held.
		"unknown status": {ID: "c", SaleID: "s", UserID: "c", Quantity: 1, Status: "pending", IdempotencyKey: "k"},
	}
	for name, odd := range tests {
		t.Run(name, func(t *testing.T) {
			sale := api.Sale{ID: "s", Stock: 2, Remaining: 0, PerUserLimit: 1}
			orders := []api.Order{odd, live("a"), live("b")}
			if name == "negative quantity" {
				orders = append(orders, live("c"))
			}
			var confirmed []Confirmation
			for _, o := range orders {
				confirmed = append(confirmed, Confirmation{OrderID: o.ID, UserID: o.UserID, Key: "k", Quantity: o.Quantity})
			}
			wantFail(t, Verify(sale, orders, confirmed, exportedAt))
		})
	}
}

// The export of sale s holds an order of sale t, and that order is the one
// a buyer of s was answered 201 with: the buyer holds nothing in s.
func TestVerifyOrderOfAnotherSale(t *testing.T) {
	sale := api.Sale{ID: "s", Stock: 2, Remaining: 1, PerUserLimit: 1}
	orders := []api.Order{{ID: "o1", SaleID: "t", UserID: "a", Quantity: 1, Status: "reserved", IdempotencyKey: "k"}}
	confirmed := []Confirmation{{OrderID: "o1", UserID: "a", Key: "k", Quantity: 1}}
	wantFail(t, Verify(sale, orders, confirmed, exportedAt))
}

// A buyer's second purchase, with another Idempotency-Key (a second crowd
// with the same --user-prefix), is answered 201 with the order of its
// first key: the server matched the buyer, not the key, and the second
// purchase holds no order. The key is compared, not only user and quantity.
func TestVerifyConfirmationOfAnotherKey(t *testing.T) {
	sale := api.Sale{ID: "s", Stock: 10, Remaining: 9, PerUserLimit: 2}
	orders := []api.Order{{ID: "o1", SaleID: "s", UserID: "a", Quantity: 1, Status: "reserved", IdempotencyKey: "k1"}}
	confirmed := []Confirmation{
		{OrderID: "o1", UserID: "a", Key: "k1", Quantity: 1},
		{OrderID: "o1", UserID: "a", Key: "k2", Quantity: 1},
	}
	wantFail(t, Verify(sale, orders, confirmed, exportedAt))
}

// A server that cuts its export (as exportOrders does on an error after the
// status: no terminating chunk) must make Fetch fail, not hand Verify the
// orders read so far.
func TestFetchRefusesCutExport(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"id":"s","stock":10,"remaining":8,"per_user_limit":1}`)
	})
	mux.HandleFunc("GET /v1/sales/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"id":"o1","sale_id":"s","user_id":"a","quantity":1,"status":"reserved"}`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, orders, err := Fetch(context.Background(), client.New(srv.URL, "tok"), "s")
	if err == nil {
		t.Fatalf("Fetch of a cut export: no error, %d orders", len(orders))
	}
}

// The run created the sale with 2 units; the server reads it back with 3
// and holds 3 live orders: each check that reads the stock from the server
// finds nothing over it, but the sale the run made oversold.
func TestVerifyRunFailsRaisedTerms(t *testing.T) {
	created := api.Sale{ID: "s", Stock: 2, PerUserLimit: 1}
	sale := api.Sale{ID: "s", Stock: 3, Remaining: 0, PerUserLimit: 1}
	var orders []api.Order
	var confirmed []Confirmation
	for _, u := range []string{"a", "b", "c"} {
		orders = append(orders, api.Order{ID: u, SaleID: "s", UserID: u, Quantity: 1, Status: "reserved", IdempotencyKey: "k",
			ExpiresAt: "2026-12-05T17:15:00Z"})
		confirmed = append(confirmed, Confirmation{OrderID: u, UserID: u, Key: "k", Quantity: 1})
	}
	r := &Result{Completed: 3, Created: &created, Status: map[int]int64{201: 3}, Codes: map[string]int64{"reserved": 3}}
	wantFail(t, VerifyRun(r, sale, orders, confirmed, exportedAt))
}
