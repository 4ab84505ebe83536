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

// TestSlowRefreshRoundIsNotStale: a sale's figures counted as stale once
// not refreshed for 3 sync intervals, so a node refreshing many sales one
// after another against a slow Redis (a round longer than 3 intervals)
// reported stale: true with Redis and PostgreSQL both answering, while
// docs/api.md says stale is true only while the node cannot refresh them.
// Stale now follows the refresh failing, not its age alone.
func TestSlowRefreshRoundIsNotStale(t *testing.T) {
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour})
	defer s.Close()
	ctx := context.Background()
	e, err := engine.Open(ctx, s, engine.Config{SyncInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const sales = 40
	for i := range sales {
		id, name, stock, limit := fmt.Sprintf("s%02d", i), "Sale", int64(10), int64(1)
		in := surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}
		if _, err := e.CreateSale(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// Each answer from Redis now takes about 10 ms: a round over 40
	// sales takes about 400 ms, 8 intervals, and every read succeeds.
	rp.Throttle(500)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for i := range sales {
			st, err := e.Sale(fmt.Sprintf("s%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			if st.Stale {
				t.Fatalf("sale %s reported stale with Redis and PostgreSQL answering (slowly)", st.ID)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
