package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/internal/checkertest"
)

// fakeExport serves a sale and its export, as a restarted server would.
func fakeExport(t *testing.T, sale api.Sale, orders []api.Order) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(sale)
	})
	mux.HandleFunc("GET /v1/sales/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, o := range orders {
			_ = enc.Encode(o)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestCrashVerifyCatchesSharedOrderID: two purchases with different keys
// (two buyers) were both answered 201 with order o1, each body matching
// its own purchase; the restarted server holds o1 for the first buyer
// only. The second buyer's confirmed order does not exist, yet
// shopper.verify skips every 201 whose order id it has seen ("a replay")
// and passes.
func TestCrashVerifyCatchesSharedOrderID(t *testing.T) {
	if !checkertest.Child() {
		checkertest.ExpectFailure(t, "o1")
		return
	}
	const saleID = "s"
	mk := func(user, key string, qty int64) api.Order {
		return api.Order{ID: "o1", SaleID: saleID, UserID: user, Quantity: qty, Status: "reserved", IdempotencyKey: key}
	}
	first, second := mk("u1", "k1", 2), mk("u2", "k2", 1)
	srv := fakeExport(t, api.Sale{ID: saleID, Stock: 10, Remaining: 8, PerUserLimit: 3}, []api.Order{first})

	s := &shopper{saleID: saleID, stock: 10, limit: 3, refusalsFinal: true,
		issued: map[string]int64{}, keys: map[string]*keyLog{}, drained: make(chan struct{})}
	for _, o := range []api.Order{first, second} {
		it := intent{user: o.UserID, key: o.IdempotencyKey, qty: o.Quantity}
		s.issued[it.id()] = it.qty
		// record checks each body against its own purchase: both pass.
		s.record(it, answer{status: http.StatusCreated, order: o})
	}
	s.verify(t, srv.URL, "token", true)
	s.checkAnswers(t)
	fmt.Println("checker done")
}
