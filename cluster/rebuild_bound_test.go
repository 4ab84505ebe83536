package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestRebuildBoundedWhilePostgresStalls: the leader's rebuild of a sale
// whose live state Redis lost waits on PostgreSQL (the new epoch and its
// snapshot), and PostgreSQL stalls (every connection open, no byte
// through). The rebuild gives up within its bound, as every other call
// does, and the round ends: it held the leader's round, with it every
// later expiry of holds and rebuild of another sale, and the lease's
// renewal, for as long as PostgreSQL stalled.
func TestRebuildBoundedWhilePostgresStalls(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	pgp := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+pgp.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "leader", Interval: time.Hour, LeaseTTL: time.Minute, CallTimeout: callTimeout})
	t.Cleanup(func() { pgp.Resume(); s.Close() })
	ctx := context.Background()
	mustSale(t, s, "lost", 10, 1)
	if !cluster.Round(ctx, s) {
		t.Fatal("the store could not take the lease")
	}
	// Redis lost the sale's state: the next round rebuilds it.
	rc := dialRedis(t)
	keys, err := rc.Keys(ctx, ns+":{lost}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the sale's keys: %v %v", keys, err)
	}
	if err := rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL stalls once the round has listed the sales.
	var once sync.Once
	cluster.AfterListing(s, func() { once.Do(pgp.Pause) })
	done := make(chan time.Duration, 1)
	began := time.Now()
	go func() {
		cluster.Round(ctx, s)
		done <- time.Since(began)
	}()
	// The rebuild's own bound (ten call timeouts, as long as a PATCH's
	// at the default call timeout), and room for a loaded machine.
	bound := 10*callTimeout + 3*time.Second
	const stalled = 10 * time.Second
	select {
	case took := <-done:
		t.Logf("the round returned after %v while PostgreSQL stalled", took.Round(time.Millisecond))
		if took > bound {
			t.Errorf("the round returned after %v while PostgreSQL stalled, want within %v", took.Round(time.Millisecond), bound)
		}
	case <-time.After(stalled):
		pgp.Resume()
		took := <-done
		t.Errorf("the leader's round returned only after %v, once PostgreSQL answered again (stalled for %v): its rebuild waited on PostgreSQL without a bound; want it back within %v",
			took.Round(time.Millisecond), stalled, bound)
	}
	pgp.Resume()
	// Once PostgreSQL answers, the next round rebuilds the sale.
	eventually(t, 10*time.Second, "the sale rebuilt", func() error {
		cluster.Round(ctx, s)
		out, _, err := reserve(s, "lost", surge.Purchase{UserID: "alice", Quantity: 1})
		if err == nil && out[0].Err != nil {
			err = out[0].Err
		}
		return err
	})
}
