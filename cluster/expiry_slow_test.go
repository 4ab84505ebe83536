package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiryWhilePostgresIsSlow: PostgreSQL takes 150 ms to expire each
// order, so a batch of the five due outlives the call timeout (400 ms)
// while an order alone does not. An expiry is a transaction that commits
// only while the leader waits, so the same batch was rolled back round
// after round: no hold ever expired and the units stayed off sale for as
// long as PostgreSQL stayed slow. The holds must still expire, and every
// unit come back.
func TestExpiryWhilePostgresIsSlow(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, CallTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	db := servicetest.Conn(t, ns)
	id, name, stock, hold := "slow", "Slow", int64(5), int64(1)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired'", 150*time.Millisecond)
	// One batch: the five holds end at the same instant.
	var ps []surge.Purchase
	for i := range int(stock) {
		ps = append(ps, surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
	}
	out, _, err := reserve(s, sl.ID, ps...)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Code != surge.CodeReserved {
			t.Fatalf("purchase %d: %+v", i, o)
		}
	}
	eventuallyRemaining(t, s, sl.ID, stock, 30*time.Second, "every hold expired while PostgreSQL was slow")
	var reserved int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'reserved'`).Scan(&reserved); err != nil {
		t.Fatal(err)
	}
	if reserved != 0 {
		t.Errorf("%d orders still reserved in PostgreSQL, their units back on sale", reserved)
	}
}
