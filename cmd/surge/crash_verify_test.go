package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
)

// checkerChild names the environment variable that makes a checker test
// run its checker in a child process (the checkers fail their *testing.T;
// the parent test expects that failure). Not SURGE_*: TestMain clears those.
const checkerChild = "CHECKER_TEST_CHILD"

// expectCheckerFails runs test name in a child test process with
// checkerChild set, and fails t if the child passed: the checker it runs
// passed a broken guarantee.
func expectCheckerFails(t *testing.T, name, want string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), checkerChild+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("the checker passed a broken guarantee:\n%s", out)
		return
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("the checker failed, but not saying %q:\n%s", want, out)
	}
}

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
	if os.Getenv(checkerChild) == "" {
		expectCheckerFails(t, t.Name(), "o1")
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
