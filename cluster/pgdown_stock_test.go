package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestPostgresDownTakesNoStock: PostgreSQL is cut off and the node knows
// it (its breaker is open, or half-open while its probe fails). A purchase
// then has no commit to follow its decision, so it must not take units in
// Redis: before, every purchase of the outage reserved its units in Redis,
// then failed its commit at once, and a crowd of new buyers during a short
// PostgreSQL outage "sold" the whole stock in Redis to reservations none of
// which could be committed. The buyers after them were answered 409
// sold_out by a sale that had sold one unit, during the outage and after
// it, until the leader reconciled those reservations
// (--cluster-confirm-after later).
func TestPostgresDownTakesNoStock(t *testing.T) {
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: 100 * time.Millisecond, ConfirmAfter: 5 * time.Second}
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable", cfg)
	defer s.Close()
	const stock = 10
	sl := mustSale(t, s, "pg-down", stock, 1)
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u0", IdempotencyKey: "k", Quantity: 1})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v, %v", out, err)
	}
	confirmed := map[string]surge.Order{out[0].Order.ID: out[0].Order}

	px.Cut()
	for i := range 3 * stock {
		if i == 2*stock {
			// Past the breaker's open time: half-open, its probe fails.
			time.Sleep(1500 * time.Millisecond)
		}
		out, took, err := reserve(s, sl.ID, surge.Purchase{UserID: fmt.Sprintf("b%d", i), IdempotencyKey: "k", Quantity: 1})
		if err == nil {
			t.Errorf("new buyer %d while PostgreSQL is cut off (1 unit of %d sold): %s, want 503 unavailable", i, stock, out[0].Code)
			continue
		}
		wantUnavailable(t, fmt.Sprintf("new buyer %d while PostgreSQL is cut off", i), err, took, 3*time.Second)
	}
	px.Restore()

	// The stock PostgreSQL has is sold at once, not answered sold out until
	// the leader reconciles what the outage took.
	var got surge.Outcome
	eventually(t, 3*time.Second, "a new buyer's purchase once PostgreSQL is back", func() error {
		out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "after", IdempotencyKey: "k", Quantity: 1})
		if err != nil {
			return err
		}
		got = out[0]
		return nil
	})
	if got.Code != surge.CodeReserved {
		t.Fatalf("a new buyer once PostgreSQL is back (1 unit of %d sold): %s, want reserved", stock, got.Code)
	}
	confirmed[got.Order.ID] = got.Order
	truth(t, s, sl, confirmed)
}
