package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

var url = servicetest.PostgresURL

// open gives the test a fresh schema on the real server; it fails, never
// skips, when PostgreSQL is down (scripts/services.sh starts it).
func open(t testing.TB) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url(), postgres.Options{Schema: servicetest.Namespace(t)})
	if err != nil {
		t.Fatalf("postgres.Open (is PostgreSQL up? run scripts/services.sh): %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

func sale(t *testing.T, db *postgres.DB) surge.Sale {
	t.Helper()
	return newSale(t, db, "s1", 10)
}

// newSale creates a sale of stock units that started an hour ago.
func newSale(tb testing.TB, db *postgres.DB, id string, stock int64) surge.Sale {
	tb.Helper()
	name := "fence"
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}, start)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateSale(context.Background(), sl, 1, nil); err != nil {
		tb.Fatal(err)
	}
	return sl
}

func order(id string, sl surge.Sale, expires time.Time) surge.Order {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return surge.Order{ID: id, SaleID: sl.ID, UserID: "u-" + id, Quantity: 1, Status: surge.OrderReserved, CreatedAt: now, ExpiresAt: expires}
}

// A batch decided against live state that a rebuild replaced inserts
// nothing: the rebuild's snapshot is final.
func TestInsertFencedByEpoch(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	sl := sale(t, db)
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{order("o1", sl, time.Now().Add(time.Hour))}, nil); err != nil {
		t.Fatalf("insert at the current epoch: %v", err)
	}
	l, ok, err := db.Acquire(ctx, "jobs", "me", 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	row, err := db.Rebuild(ctx, sl.ID, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(ctx, row, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Epoch != 2 || len(snap.Live) != 1 {
		t.Fatalf("snapshot: epoch %d, %d live orders; want 2 and 1", snap.Epoch, len(snap.Live))
	}
	_, _, err = db.InsertOrders(ctx, sl.ID, 1, []surge.Order{order("o2", sl, time.Now().Add(time.Hour)), order("o3", sl, time.Now().Add(time.Hour))}, nil)
	if !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("insert at the old epoch: err = %v, want ErrFenced", err)
	}
	if _, err := db.Order(ctx, "o2"); !surge.HasCode(err, surge.CodeOrderNotFound) {
		t.Errorf("a fenced order was written: %v", err)
	}
	_, missing, err := db.InsertOrders(ctx, sl.ID, 2, []surge.Order{order("o4", sl, time.Now().Add(time.Hour))}, []string{"o1", "o2"})
	if err != nil {
		t.Fatalf("insert at the new epoch: %v", err)
	}
	if len(missing) != 1 || missing[0] != "o2" {
		t.Errorf("missing = %v, want [o2]", missing)
	}
}

// A leader whose lease passed to another node can neither expire holds
// nor rebuild: its writes carry the old token.
func TestStaleLeaderCannotWrite(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	sl := sale(t, db)
	past := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{order("due", sl, past)}, nil); err != nil {
		t.Fatal(err)
	}
	old, ok, err := db.Acquire(ctx, "jobs", "a", 300*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("a: %v %v", ok, err)
	}
	if _, ok, _ := db.Acquire(ctx, "jobs", "b", time.Second); ok {
		t.Fatalf("b took a current lease")
	}
	time.Sleep(400 * time.Millisecond) // a pauses past its term
	cur, ok, err := db.Acquire(ctx, "jobs", "b", 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("b after a's term: %v %v", ok, err)
	}
	if cur.Token <= old.Token {
		t.Errorf("new term token %d not above old %d", cur.Token, old.Token)
	}
	got, err := db.Expire(ctx, time.Now(), old, 100)
	if err != nil || len(got) != 0 {
		t.Errorf("stale leader expired %v (err %v), want nothing", got, err)
	}
	if _, err := db.Rebuild(ctx, sl.ID, 1, old); !errors.Is(err, postgres.ErrLeaseLost) {
		t.Errorf("stale leader rebuild: %v, want ErrLeaseLost", err)
	}
	got, err = db.Expire(ctx, time.Now(), cur, 100)
	if err != nil || len(got) != 1 || got[0].ID != "due" {
		t.Errorf("current leader expired %v (err %v), want [due]", got, err)
	}
	// a comes back: same holder name, but a new term, with a new token.
	if _, ok, _ := db.Acquire(ctx, "jobs", "a", time.Second); ok {
		t.Errorf("a took the lease back while b's is current")
	}
}

// Nodes starting together migrate one schema at once: the advisory lock
// lets one apply the migrations and the others find them applied.
func TestConcurrentMigrations(t *testing.T) {
	schema := servicetest.Namespace(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := postgres.Open(context.Background(), url(), postgres.Options{Schema: schema})
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent open: %v", err)
		}
	}
	db, err := postgres.Open(context.Background(), url(), postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Sales(context.Background()); err != nil {
		t.Errorf("schema unusable after concurrent migrations: %v", err)
	}
}
