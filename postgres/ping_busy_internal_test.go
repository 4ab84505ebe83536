package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPingWithEveryConnectionBusy: the readiness probe (cluster's Ready)
// pings PostgreSQL. With every connection of the pool busy (a node under
// its heaviest load, each one committing a batch) the ping waited for one
// of them until the probe's bound and failed, and the node was reported
// not ready: a load balancer then took a healthy node out at the worst
// moment. PostgreSQL answers; the ping must say so.
func TestPingWithEveryConnectionBusy(t *testing.T) {
	db, _ := openSchema(t, Options{MaxConns: 2})
	ctx := context.Background()
	var held []*pgxpool.Conn
	for range 2 {
		c, err := db.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, time.Second) // the readiness probe's bound
	defer cancel()
	start := time.Now()
	if err := db.Ping(pctx); err != nil {
		t.Fatalf("ping with the pool's every connection busy: %v after %v; want PostgreSQL's answer", err, time.Since(start).Round(time.Millisecond))
	}
}
