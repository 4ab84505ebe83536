package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiryWithLostAnswerIsCounted: the leader's expiry commits after
// the call timeout gave up on it (PostgreSQL slow, the cancel ignored):
// the order is expired but the leader never heard, so its unit came back
// only by the sweep, and the expiry was never counted in
// surge_order_transitions_total{to="expired"}, whose totals then
// disagreed with the orders. It must be counted, once. (The expiry is a
// transaction: only its COMMIT can still land unheard.)
func TestExpiryWithLostAnswerIsCounted(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	reg, m := newMetrics(t)
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, CallTimeout: 400 * time.Millisecond, Metrics: reg})
	e, err := engine.Open(ctx, s, engine.Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })
	db := servicetest.Conn(t, ns)
	stallCommit(t, db, "NEW.status = 'expired'", 1500*time.Millisecond)
	id, name, stock, hold := "lost", "Lost", int64(3), int64(1)
	engineSale(t, e, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold})
	enginePurchase(t, e, engine.PurchaseRequest{SaleID: id, Purchase: surge.Purchase{UserID: "alice", IdempotencyKey: "k", Quantity: 1}})
	expired := func() float64 { return expiredCount(t, reg, id, -1) }
	eventually(t, 15*time.Second, "the unit is back", func() error {
		if st, err := e.Sale(id); err != nil || st.Remaining != stock {
			return fmt.Errorf("remaining %d (%v), want %d", st.Remaining, err, stock)
		}
		return nil
	})
	eventually(t, 5*time.Second, "the expiry is counted", func() error {
		if n := expired(); n != 1 {
			return fmt.Errorf("expired transitions %v", n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // later rounds (expiry, sweep) count nothing more
	if n := expired(); n != 1 {
		t.Errorf("the order expired and its unit came back, but surge_order_transitions_total{to=expired} = %v; want 1 (the sweep gave its unit back uncounted, or counted it twice)", n)
	}
}
