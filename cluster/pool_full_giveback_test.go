package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestPoolFullCommitGivesUnitsBack: a batch whose commit found no
// connection of the pool free (each one busy with another sale's inserts,
// stuck behind its locked row) never reached PostgreSQL, yet its units
// stayed taken in Redis, and its key answered 503, until the leader found
// the order never committed (--cluster-confirm-after, 10 s); the buyer was
// told Retry-After ≈ 11 s. Nothing can ever commit it: the units must be
// back at once, the buyer told to retry shortly, and the retry with the
// same key reserve.
func TestPoolFullCommitGivesUnitsBack(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	s := openStoreAt(t, redisURL(), postgresURL()+"&pool_max_conns=2",
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour})
	t.Cleanup(func() { s.Close() })
	mustSale(t, s, "hot", 100, 100)
	mustSale(t, s, "last", 1, 1)
	tx, _ := holdSaleRow(t, ns, "hot")
	// Two buyers of "hot" keep both connections, waiting for its row.
	for i := range 2 {
		go func() { _, _, _ = reserve(s, "hot", surge.Purchase{UserID: fmt.Sprintf("h%d", i), Quantity: 1}) }()
	}
	watch := servicetest.Conn(t, ns)
	eventually(t, 10*time.Second, "both connections wait for the hot sale's row", func() error {
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%surge_insert_orders%' AND datname = current_database()`).Scan(&n); err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%d wait", n)
		}
		return nil
	})
	// The buyer of the last unit waits less than the hot sale's buyers
	// hold the connections (their call timeout, 2 s).
	bctx, cancel := context.WithTimeout(ctx, time.Second)
	buy := surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1}
	_, _, err := s.Reserve(bctx, "last", []surge.Purchase{buy}, surge.At(time.Now()))
	cancel()
	if err == nil {
		t.Fatal("the purchase committed with no connection free")
	}
	var se *surge.Error
	if !errors.As(err, &se) || se.Code != surge.CodeUnavailable || se.RetryAfter > 2*time.Second {
		t.Errorf("purchase with the pool full: %v (Retry-After %v); want 503 with a Retry-After of a second or two", err, retryAfter(se))
	}
	if rem, err := s.Remaining(ctx, "last"); err != nil || rem != 1 {
		t.Errorf("units left of the sale whose commit never reached PostgreSQL: %d (%v); want its unit back at once, 1", rem, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	out, _, err := reserve(s, "last", buy)
	if err == nil && out[0].Err != nil {
		err = out[0].Err
	}
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Errorf("the retry with the same key once the pool is free: %+v, %v; want reserved", out, err)
	}
}

func retryAfter(se *surge.Error) time.Duration {
	if se == nil {
		return 0
	}
	return se.RetryAfter
}
