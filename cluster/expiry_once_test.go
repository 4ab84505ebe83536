package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiryCountedOnceWhenItsReleaseFailed: the leader expired a hold in
// PostgreSQL and counted it (OnRelease, surge_order_transitions_total
// {to="expired"}), but Redis was down, so its unit could not go back, and
// marking the sale for a rebuild failed too. The sweep gives the unit back
// once Redis returns, and must not count the expiry a second time: the
// metric would then say two holds expired where one did.
func TestExpiryCountedOnceWhenItsReleaseFailed(t *testing.T) {
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: 100 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	var mu sync.Mutex
	heard := 0
	s.OnRelease(func(_ string, n int) { mu.Lock(); heard += n; mu.Unlock() })
	counted := func() int { mu.Lock(); defer mu.Unlock(); return heard }
	db := servicetest.Conn(t, ns)
	ctx := context.Background()

	id := "once"
	stock := heldPastItsEnd(t, s, db, id)
	// Marking the sale dirty fails, and Redis is gone.
	rp.Cut()
	expired, err := s.Expire(ctx, time.Now())
	if err != nil || len(expired) != 1 {
		t.Fatalf("expire: %d orders, %v; want the one", len(expired), err)
	}
	if n := counted(); n != 1 {
		t.Fatalf("the expiry told OnRelease of %d expired orders; want 1", n)
	}

	// Both come back: the sweep gives the unit back.
	if _, err := db.Exec(ctx, `DROP TRIGGER refuse_dirty ON sales`); err != nil {
		t.Fatal(err)
	}
	rp.Restore()
	eventuallyRemaining(t, s, id, stock, 20*time.Second, "the sweep gives the expired hold's unit back")
	// The sweep counts right after its release; a few more rounds (10 a
	// second) must count nothing either.
	time.Sleep(time.Second)
	if n := counted(); n != 1 {
		t.Errorf("one hold expired, but OnRelease (surge_order_transitions_total{to=\"expired\"}) heard of %d: the sweep that gave its unit back counted the expiry again; want 1", n)
	}
}

// TestExpiryCountedOnceAcrossLeaders: leader A expired a hold and counted
// it (OnRelease, surge_order_transitions_total{to="expired"}), but its
// unit could not go back to Redis nor the sale be marked for a rebuild.
// The lead then moved to B, whose sweep gave the unit back. The cluster
// must have counted the expiry once, A's and B's counts together: B knows
// nothing of what A counted.
func TestExpiryCountedOnceAcrossLeaders(t *testing.T) {
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	var mu sync.Mutex
	heard := map[string]int{}
	count := func(node string) func(string, int) {
		return func(_ string, n int) { mu.Lock(); heard[node] += n; mu.Unlock() }
	}
	total := func() (int, string) { mu.Lock(); defer mu.Unlock(); return heard["a"] + heard["b"], fmt.Sprint(heard) }
	a := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: 100 * time.Millisecond})
	t.Cleanup(func() { a.Close() })
	a.OnRelease(count("a"))
	db := servicetest.Conn(t, ns)
	ctx := context.Background()

	id := "moved"
	stock := heldPastItsEnd(t, a, db, id)
	rp.Cut()
	if expired, err := a.Expire(ctx, time.Now()); err != nil || len(expired) != 1 {
		t.Fatalf("expire on A: %d orders, %v; want the one", len(expired), err)
	}
	if n, by := total(); n != 1 {
		t.Fatalf("A's expiry was counted %d times (%s); want 1", n, by)
	}
	// A leaves (its lease resigned); B leads and sweeps.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `DROP TRIGGER refuse_dirty ON sales`); err != nil {
		t.Fatal(err)
	}
	rp.Restore()
	b := openStore(t, ns, cluster.Config{NoExpiry: true, Interval: 100 * time.Millisecond})
	t.Cleanup(func() { b.Close() })
	b.OnRelease(count("b"))
	eventuallyRemaining(t, b, id, stock, 20*time.Second, "B's sweep gives the expired hold's unit back")
	time.Sleep(time.Second) // more rounds (10 a second) count nothing either
	if n, by := total(); n != 1 {
		t.Errorf("one hold expired, but the nodes counted it %d times (%s): the new leader's sweep counted again what the old leader had counted; want 1", n, by)
	}
}

// heldPastItsEnd creates sale id on s (3 units, holds of an hour, started
// three hours ago) with one unit reserved two hours ago, its hold ended,
// and makes marking any sale for a rebuild fail (a trigger, through db):
// once Redis is cut, an expiry's unit can go back only by the sweep. It
// returns the sale's stock.
func heldPastItsEnd(t *testing.T, s *cluster.Store, db *pgx.Conn, id string) int64 {
	t.Helper()
	ctx := context.Background()
	name, stock, hold, start := "Sale "+id, int64(3), int64(3600), time.Now().Add(-3*time.Hour)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, HoldSeconds: &hold}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Reserve(ctx, id, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(time.Now().Add(-2*time.Hour)))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v %v", out, err)
	}
	for _, q := range []string{
		`CREATE FUNCTION refuse_dirty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'test: dirty refused'; END $$`,
		`CREATE TRIGGER refuse_dirty BEFORE UPDATE ON sales FOR EACH ROW WHEN (NEW.dirty AND NOT OLD.dirty) EXECUTE FUNCTION refuse_dirty()`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return stock
}
