package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/storetest"
)

// twoNodes opens two nodes (a store and an engine each, as two `surge
// serve` processes would have) over one dataset.
func twoNodes(t *testing.T) ([]*engine.Engine, []*cluster.Store) {
	t.Helper()
	ns := namespace(t)
	var engines []*engine.Engine
	var stores []*cluster.Store
	for i := range 2 {
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i), Interval: 200 * time.Millisecond})
		e, err := engine.Open(context.Background(), s, engine.Config{MaxBatch: 32, InFlight: 4})
		if err != nil {
			t.Fatal(err)
		}
		engines, stores = append(engines, e), append(stores, s)
	}
	t.Cleanup(func() {
		for i := range engines {
			engines[i].Close()
			stores[i].Close()
		}
	})
	return engines, stores
}

// TestSteerReachesEveryNode: a change made on one node is durable before
// its answer and every other node follows it (the announcement, else the
// 500 ms poll); the time it took is logged.
func TestSteerReachesEveryNode(t *testing.T) {
	engines, stores := twoNodes(t)
	ctx := t.Context()
	id, name, stock := "steer", "Steer", int64(10)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })
	for _, c := range []struct {
		what string
		p    surge.SalePatch
		want func(engine.SaleState) bool
	}{
		{"pause", surge.SalePatch{Paused: new(true)}, func(s engine.SaleState) bool { return s.Status == surge.SalePaused }},
		{"resume, stock 25", surge.SalePatch{Paused: new(false), Stock: new(int64(25))}, func(s engine.SaleState) bool {
			return s.Status == surge.SaleLive && s.Stock == 25 && s.Remaining == 25
		}},
		{"end now", surge.SalePatch{EndsAt: new(time.Now())}, func(s engine.SaleState) bool { return s.Status == surge.SaleEnded }},
	} {
		if _, err := engines[0].UpdateSale(ctx, id, c.p); err != nil {
			t.Fatalf("UpdateSale(%s): %v", c.what, err)
		}
		start := time.Now() // the answer
		eventually(t, 5*time.Second, "node 1 follows "+c.what, func() error {
			if st, _ := engines[1].Sale(id); !c.want(st) {
				return fmt.Errorf("node 1 shows %+v", st)
			}
			return nil
		})
		t.Logf("%s: node 1 followed %v after node 0 answered", c.what, time.Since(start))
	}
	// Durable: a node opened afterwards reads the changed sale.
	got, err := stores[1].Sale(ctx, id)
	if err != nil || got.Stock != 25 || got.Paused || got.EndsAt.IsZero() {
		t.Errorf("the changed sale as PostgreSQL holds it: %+v (%v)", got, err)
	}
}

// TestSteerUnderSpike (cluster, two nodes): a crowd buys through both
// nodes while the operator, through one node then the other, lowers the
// stock to near what is sold and raises it, pauses and resumes the sale
// and lowers its limit; the guarantees hold at every point
// (storetest's SteerSpike.Verify, against PostgreSQL).
func TestSteerUnderSpike(t *testing.T) {
	engines, stores := twoNodes(t)
	ctx := t.Context()
	id, name, stock, limit, hold := "spike", "Spike", int64(150), int64(3), int64(3600)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })
	res := storetest.SteerSpike{
		SaleID: id, Stock: stock, Limit: limit, Nodes: 2,
		Buy: func(ctx context.Context, node int, p surge.Purchase) (surge.Outcome, error) {
			return engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: p})
		},
		Steer: func(ctx context.Context, node int, p surge.SalePatch) error {
			_, err := engines[node].UpdateSale(ctx, id, p)
			return err
		},
		Remaining: func(ctx context.Context) (int64, error) { return stores[0].Remaining(ctx, id) },
	}.Run(t)
	res.Verify(t, stores[1])
}
