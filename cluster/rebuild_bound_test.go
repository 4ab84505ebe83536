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
// whose live state Redis lost waits on PostgreSQL (the new epoch, then the
// read of its live orders), and PostgreSQL stalls (every connection open,
// no byte through). The rebuild gives up within its bound, as every other
// call does, and the round ends: it held the leader's round, with it every
// later expiry of holds and rebuild of another sale, and the lease's
// renewal, for as long as PostgreSQL stalled. Once the epoch is committed,
// the bound is a call timeout without progress.
func TestRebuildBoundedWhilePostgresStalls(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// stall has PostgreSQL stall at its point of the round, once.
		stall func(s *cluster.Store, pause func())
	}{
		{"AtTheNewEpoch", func(s *cluster.Store, pause func()) { cluster.AfterListing(s, pause) }},
		{"AtTheRead", func(s *cluster.Store, pause func()) { cluster.BeforeInstall(s, pause) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			var once sync.Once
			tc.stall(s, func() { once.Do(pgp.Pause) })
			done := make(chan time.Duration, 1)
			began := time.Now()
			go func() {
				cluster.Round(ctx, s)
				done <- time.Since(began)
			}()
			// The new epoch's own bound (ten call timeouts, as long as a
			// PATCH's at the default call timeout), and room for a loaded
			// machine.
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
		})
	}
}

// TestRebuildLongerThanItsBoundCompletes: the rebuild of a sale whose
// live orders take PostgreSQL longer to send than the rebuild's bound
// (a sale with many orders, a slow link; here thirty thousand orders at
// 256 KiB/s, about ten seconds, against a bound of ten call timeouts,
// five seconds) gave up at its bound, and the next round started it over
// from scratch under a new epoch, to give up again: the sale never came
// back. A rebuild that makes progress, a few rows at a time, must
// complete; the bound is for a PostgreSQL or Redis that stops answering.
func TestRebuildLongerThanItsBoundCompletes(t *testing.T) {
	const (
		callTimeout = 500 * time.Millisecond
		orders      = 30000
	)
	pgp := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+pgp.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "leader", Interval: time.Hour, LeaseTTL: time.Minute, CallTimeout: callTimeout})
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	mustSale(t, s, "many", orders+10, 1)
	c := servicetest.Conn(t, ns)
	if _, err := c.Exec(ctx, `INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
		SELECT 'o' || i, 'many', 'u' || i, 1, 'reserved', 'k' || i, now(), now() + interval '1 hour'
		FROM generate_series(1, $1) i`, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `UPDATE sales SET sold = $1, ever = $1 WHERE id = 'many'`, orders); err != nil {
		t.Fatal(err)
	}
	if !cluster.Round(ctx, s) { // it rebuilds the sale: Redis is behind
		t.Fatal("the store could not take the lease")
	}
	// Redis lost the sale's state; PostgreSQL sends slowly.
	rc := dialRedis(t)
	keys, err := rc.Keys(ctx, ns+":{many}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the sale's keys: %v %v", keys, err)
	}
	if err := rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	pgp.Throttle(256 << 10)
	const rounds = 3
	for i := range rounds {
		began := time.Now()
		cluster.Round(ctx, s)
		err := buyOnce(s, "many", "alice")
		t.Logf("round %d took %v; then a purchase: %v", i+1, time.Since(began).Round(time.Millisecond), err)
		if err == nil {
			return
		}
	}
	t.Errorf("the sale was not rebuilt in %d rounds", rounds)
}
