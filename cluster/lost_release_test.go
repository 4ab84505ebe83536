package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// TestRolledBackReleasesComeBack: Redis rolls back (here a replica behind
// is promoted) to before some holds expired, and loses only those
// releases: PostgreSQL gave the units back, Redis holds them taken again,
// with the buyers' per-user counts. Nothing is oversold, but the units are
// off sale and their buyers at their limit. The sale sold out long ago
// (not selling: the sweep reads it only in its turn, and a large sale's
// orders a few dozen a round) and the sweep's turn of the next rounds
// passes it by (more sales than it reads in two rounds); the leader must
// still find, within two rounds, that Redis holds fewer units remaining
// than PostgreSQL does, and rebuild the sale.
func TestRolledBackReleasesComeBack(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	rc, err := redis.Dial(ctx, redisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Each node's loop runs one round, at its start; the test runs the
	// others, and expires holds itself.
	// The lease is renewed only in rounds: it must outlast the test.
	cfg := cluster.Config{NodeID: "a", Interval: time.Hour, LeaseTTL: time.Minute, NoExpiry: true, ConfirmAfter: time.Millisecond}
	a := openStore(t, ns, cfg)
	defer a.Close()
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	sl := mustSale(t, a, "z", 4, 1)
	orders := map[string]surge.Order{}
	for _, u := range []string{"p0", "p1", "e0", "e1"} {
		out := settled(t, a, sl.ID, surge.Purchase{UserID: u, IdempotencyKey: "k", Quantity: 1})
		if out.Code != surge.CodeReserved {
			t.Fatalf("%s: %+v, want reserved", u, out)
		}
		orders[u] = out.Order
	}
	for _, u := range []string{"p0", "p1"} {
		if _, err := a.Pay(ctx, orders[u].ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// A round confirms the reservations in Redis, as rounds long past did.
	if !cluster.Round(ctx, a) {
		t.Fatal("a could not lead")
	}
	a.Close()
	// It sold out long ago: the holds ended past the sweep's window for
	// sales selling, as the new leader b sees them.
	db := servicetest.Conn(t, ns)
	if _, err := db.Exec(ctx, `UPDATE orders SET expires_at = now() - interval '1 hour' WHERE sale_id = 'z'`); err != nil {
		t.Fatal(err)
	}
	cfg.NodeID = "b"
	b := openStore(t, ns, cfg)
	defer b.Close()
	eventuallyLeads(t, b, 10*time.Second, "b leads")
	cluster.AfterListing(b, nil) // once b's first round is over
	// More sales after it than the sweep reads in two rounds (256 each).
	for i := range 520 {
		mustSale(t, b, fmt.Sprintf("f%03d", i), 1, 1)
	}
	promote := replicaOf(t, rc, ns) // the replica has everything up to here
	if got, err := b.Expire(ctx, time.Now()); err != nil || len(got) != 2 {
		t.Fatalf("expire e0's and e1's holds: %d orders, %v", len(got), err)
	}
	promote()
	if rem, err := b.Remaining(ctx, sl.ID); err != nil || rem != 0 {
		t.Fatalf("fixture: Remaining = %d, %v after the rollback; want 0 (the releases lost)", rem, err)
	}

	for i := range 2 {
		if !cluster.Round(ctx, b) {
			t.Fatalf("round %d: b could not lead", i)
		}
	}
	if rem, err := b.Remaining(ctx, sl.ID); err != nil || rem != 2 {
		t.Errorf("two leader rounds after the rollback: Remaining = %d, %v; want the 2 units whose holds expired", rem, err)
	}
	for _, u := range []string{"e0", "n0"} {
		out := settled(t, b, sl.ID, surge.Purchase{UserID: u, IdempotencyKey: "k2", Quantity: 1})
		if out.Code != surge.CodeReserved {
			t.Errorf("%s buys one of the units given back: %+v, want reserved", u, out)
		}
	}
	out := settled(t, b, sl.ID, surge.Purchase{UserID: "n1", IdempotencyKey: "k", Quantity: 1})
	if out.Code != surge.CodeSoldOut {
		t.Errorf("n1 once the units given back are sold: %+v, want sold_out", out)
	}
}
