package cluster_test

import (
	"cmp"
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
	stock := int64(5)
	sl := secondHoldSale(t, s, "slow", stock)
	stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired'", 150*time.Millisecond)
	// One batch: the five holds end at the same instant.
	reserveEach(t, s, sl, int(stock))
	eventuallyRemaining(t, s, sl.ID, stock, 30*time.Second, "every hold expired while PostgreSQL was slow")
	var reserved int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'reserved'`).Scan(&reserved); err != nil {
		t.Fatal(err)
	}
	if reserved != 0 {
		t.Errorf("%d orders still reserved in PostgreSQL, their units back on sale", reserved)
	}
}

// secondHoldSale creates sale id of stock units on s, its holds a second
// long.
func secondHoldSale(t *testing.T, s *cluster.Store, id string, stock int64) surge.Sale {
	t.Helper()
	name, hold := id, int64(1)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, s, sl) // retried: the node's call timeout is short
	return sl
}

// reserveEach reserves n single units of sl on s in one batch, one buyer
// each, and fails the test unless every one is reserved.
func reserveEach(t *testing.T, s *cluster.Store, sl surge.Sale, n int) {
	t.Helper()
	var ps []surge.Purchase
	for i := range n {
		ps = append(ps, surge.Purchase{UserID: fmt.Sprintf("%s-u%d", sl.ID, i), IdempotencyKey: "k", Quantity: 1})
	}
	// A batch that outlasts the node's short call timeout on a loaded
	// machine is retried with the same keys, as a client would: one that
	// committed unheard replays (503 while its commit is unknown).
	var out []surge.Outcome
	retrySetup(t, "reserve "+sl.ID, func() error {
		var err error
		if out, _, err = reserve(s, sl.ID, ps...); err == nil {
			for _, o := range out {
				err = cmp.Or(err, o.Err)
			}
		}
		return err
	}, nil)
	for i, o := range out {
		if o.Code != surge.CodeReserved {
			t.Fatalf("%s purchase %d: %+v", sl.ID, i, o)
		}
	}
}
