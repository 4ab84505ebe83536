package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestRedisSentinelFailover: Redis behind Sentinel (docs/cluster.md,
// Replicas), a master and its asynchronous replica on loopback. The node
// connects through the Sentinel (its URL names it and the master); the
// replica falls behind (its link paused) while buyers keep buying, then
// the Sentinel promotes it. The node must follow the failover to the new
// master by itself, find the state it lost (the newest reservations) and
// rebuild it: every 201 retried with its key replays its order, a buyer
// at the limit stays refused, and the stock is sold exactly once.
// Before, a Sentinel URL was refused ("unexpected option: master_name"):
// a node could only be given the master's own address, and kept calling
// it after a failover, down or made a replica, until its URL changed.
func TestRedisSentinelFailover(t *testing.T) {
	rs := servicetest.StartRedisSentinel(t)
	ns := namespace(t)
	s := openStoreAt(t, rs.URL(), postgresURL(), cluster.Config{NodeID: "n", Prefix: ns, Schema: ns,
		Interval: 200 * time.Millisecond, ConfirmAfter: 2 * time.Second})
	eventuallyLeads(t, s, 10*time.Second, "the node leads")
	e, err := engine.Open(context.Background(), s, engine.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })

	const sale, stock, limit = "sentinel", 20, 2
	id, name, st, lim, hold := sale, "Sentinel", int64(stock), int64(limit), int64(3600)
	engineSale(t, e, surge.SaleInput{ID: &id, Name: &name, Stock: &st, PerUserLimit: &lim, HoldSeconds: &hold})

	type bought struct{ user, key string }
	orders := map[bought]surge.Order{}
	purchase := func(user, key string) {
		out := enginePurchase(t, e, engine.PurchaseRequest{SaleID: sale,
			Purchase: surge.Purchase{UserID: user, IdempotencyKey: key, Quantity: 1}})
		orders[bought{user, key}] = out.Order
	}
	for i := range 6 {
		purchase(fmt.Sprintf("u%d", i), "first")
	}
	rs.Link.Pause() // the replica receives nothing more
	for i := 6; i < 12; i++ {
		purchase(fmt.Sprintf("u%d", i), "first")
	}
	purchase("u0", "second") // u0 at the limit
	old := rs.MasterAddr()
	rs.Failover()
	t.Logf("failed over from %s to %s", old, rs.MasterAddr())

	// until answers a purchase on e, retrying 503s (the node follows the
	// new master, finds Redis behind PostgreSQL, the leader rebuilds) as
	// a client honouring Retry-After does, for up to 30 s.
	until := func(user, key string) (surge.Outcome, error) {
		var out surge.Outcome
		var err error
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
			out, err = buy(e, sale, user, key, 1)
			if surge.ErrorCode(err) != surge.CodeUnavailable {
				return out, err
			}
		}
		return out, err
	}
	for b, o := range orders {
		out, err := until(b.user, b.key)
		if err != nil || out.Code != surge.CodeReserved || out.Order.ID != o.ID {
			t.Errorf("retry of %s/%s's 201 after the failover: %v %v %s, want the order %s", b.user, b.key, out.Code, err, out.Order.ID, o.ID)
		}
	}
	if out, err := until("u0", "third"); err != nil || out.Code != surge.CodeLimitReached {
		t.Errorf("u0 at the limit, a third unit after the failover: %v %v, want limit_reached", out.Code, err)
	}
	// The rest of the stock, to new buyers: exactly what is left.
	sold := len(orders)
	for i := 0; ; i++ {
		out, err := until(fmt.Sprintf("v%d", i), "k")
		if err != nil {
			t.Fatalf("new buyer v%d after the failover: %v", i, err)
		}
		if out.Code == surge.CodeSoldOut {
			break
		}
		if out.Code != surge.CodeReserved {
			t.Fatalf("new buyer v%d after the failover: %v", i, out.Code)
		}
		sold++
	}
	if sold != stock {
		t.Errorf("%d units sold in all, want the stock, %d", sold, stock)
	}
	// PostgreSQL holds every unit once, no buyer over the limit.
	units, per := int64(0), map[string]int64{}
	if err := s.Orders(context.Background(), sale, func(o surge.Order) error {
		if o.Status.Live() {
			units += o.Quantity
			per[o.UserID] += o.Quantity
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if units != stock {
		t.Errorf("PostgreSQL holds %d live units, want %d", units, stock)
	}
	for u, n := range per {
		if n > limit {
			t.Errorf("buyer %s holds %d units, over the limit %d", u, n, limit)
		}
	}
	if rs.MasterAddr() == old {
		t.Error("the Sentinel still names the old master")
	}
}
