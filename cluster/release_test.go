package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
)

// TestExpiryCountsTransitions: a hold that the leader's own expiry job
// ends is counted as surge_order_transitions_total{to="expired"} on the
// node's registry, once, and the engine's remaining-stock hint gets the
// unit back, as in embedded mode.
func TestExpiryCountsTransitions(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	reg, m := newMetrics(t)
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	e, err := engine.Open(ctx, s, engine.Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })

	id, name, stock, hold := "hold", "Hold", int64(3), int64(1)
	if _, err := e.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}); err != nil {
		t.Fatal(err)
	}
	out, err := e.Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: surge.Purchase{UserID: "alice", Quantity: 1}})
	if err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v %v", out, err)
	}
	expired := func() float64 { return expiredCount(t, reg, id, -1) }
	if n := expired(); n != 0 {
		t.Fatalf("expired transitions before the hold ends: %v, want 0", n)
	}
	eventually(t, 10*time.Second, "the leader expires the hold", func() error {
		if o, err := s.Order(ctx, out.Order.ID); err != nil || o.Status != surge.OrderExpired {
			return fmt.Errorf("order %+v, %v", o, err)
		}
		return nil
	})
	eventually(t, 5*time.Second, "the expiry is counted and the unit is back", func() error {
		if n := expired(); n != 1 {
			return fmt.Errorf("expired transitions %v, want 1", n)
		}
		if st, err := e.Sale(id); err != nil || st.Remaining != stock {
			return fmt.Errorf("remaining %d (%v), want %d", st.Remaining, err, stock)
		}
		return nil
	})
	// Later rounds expire nothing more: the count stays.
	time.Sleep(300 * time.Millisecond)
	if n := expired(); n != 1 {
		t.Errorf("expired transitions %v after more rounds, want 1", n)
	}
}

// TestExpiryBeforeEngineOpensIsCounted: a node that starts after downtime
// takes the lead at once and its first round expires every hold that ran
// out meanwhile, in cluster.Open, before the engine (opened next, as
// surge serve does) has registered for releases. Those orders left
// reserved on this node (OnRelease: "each expiry is counted once in the
// cluster", here), so surge_order_transitions_total{to="expired"} must
// count them; it counted none (the twin of embedded mode's
// TestReleaseWhileOpeningIsHeard, which fixed only the hints).
func TestExpiryBeforeEngineOpensIsCounted(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	// Before the downtime: an order whose hold ends while no node runs.
	first := openStore(t, ns, cluster.Config{NoExpiry: true})
	now := time.Now().UTC().Truncate(time.Millisecond)
	id, name, stock, hold := "hold", "Hold", int64(3), int64(1)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	out, _, err := first.Reserve(ctx, id, []surge.Purchase{{UserID: "alice", Quantity: 1}}, surge.At(now.Add(-time.Minute)))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", out, err)
	}
	o := out[0].Order
	first.Close() // resigns: the next node leads at once

	// The start: the store, then the engine, as surge serve opens them.
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	// The leader's first round, started in cluster.Open, ends before the
	// engine registers for releases: engine.Open first reads every sale's
	// figures, one round trip each, so with a shop of 100 sales it loses
	// this race nearly every time; here it is made to lose it every time.
	eventually(t, 10*time.Second, "the leader expires the hold", func() error {
		if got, err := s.Order(ctx, o.ID); err != nil || got.Status != surge.OrderExpired {
			return fmt.Errorf("order %+v, %v", got, err)
		}
		return nil
	})
	reg, m := newMetrics(t)
	e, err := engine.Open(ctx, s, engine.Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	expired := func() float64 { return expiredCount(t, reg, id, 0) }
	time.Sleep(500 * time.Millisecond) // later rounds: nothing more to expire
	if n := expired(); n != 1 {
		t.Errorf("surge_order_transitions_total{to=%q} = %v after this node expired 1 order, want 1", metrics.ToExpired, n)
	}
	if st, err := e.Sale(id); err != nil || st.Remaining != stock {
		t.Errorf("remaining %d (%v), want %d", st.Remaining, err, stock)
	}
}
