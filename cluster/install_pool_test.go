package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// TestConcurrentChangesDoNotExhaustThePool: a change of a sale holds its
// install lock on one PostgreSQL connection and needs a second one for its
// transaction. As many changes at once as the pool has connections (16 by
// default: sales paused together at the end of a campaign) each held a
// lock connection and waited for a second one that never came free: every
// one of them, and every purchase of the node meanwhile, waited until the
// change's bound (20 s) and answered 503. Each change must be answered,
// changed, well before that bound.
func TestConcurrentChangesDoNotExhaustThePool(t *testing.T) {
	const changes = 24 // more than the pool's 16 connections
	ns := namespace(t)
	ctx := context.Background()
	s := openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true})
	t.Cleanup(func() { s.Close() })
	pastSales(t, s, changes)
	start := time.Now()
	var g errgroup.Group
	errs := make([]error, changes)
	took := make([]time.Duration, changes)
	for i := range changes {
		g.Go(func() error {
			began := time.Now()
			sl, err := s.UpdateSale(ctx, fmt.Sprintf("past%d", i), surge.SalePatch{Stock: new(int64(20))}, surge.At(time.Now()))
			if err == nil && sl.Stock != 20 {
				err = fmt.Errorf("answered stock %d, want 20", sl.Stock)
			}
			errs[i], took[i] = err, time.Since(began)
			return nil
		})
	}
	_ = g.Wait()
	failed := 0
	var slowest time.Duration
	for i, err := range errs {
		if err != nil {
			failed++
			if failed == 1 {
				t.Logf("change of past%d: %v (after %v)", i, err, took[i].Round(time.Millisecond))
			}
		}
		slowest = max(slowest, took[i])
	}
	t.Logf("%d changes at once: %d failed, all answered within %v", changes, failed, time.Since(start).Round(time.Millisecond))
	if failed > 0 || slowest > 15*time.Second {
		t.Errorf("%d concurrent changes of %d sales: %d failed, the slowest answered after %v; want every one changed well before the change's 20 s bound",
			changes, changes, failed, slowest.Round(time.Millisecond))
	}
}
