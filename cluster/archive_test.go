package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/postgres"
)

// deaf is a node that never hears announcements: it follows the other
// nodes by its poll alone, as after lost notifications.
type deaf struct{ *cluster.Store }

func (deaf) Changed() <-chan string { return nil }

// TestArchiveAcrossNodes: a sale archived on one node leaves the others
// (issue 9, item 12): the node that hears the announcement and the one
// that only polls both stop serving it live, list it as archived, and a
// node started afterwards does not load it; archiving it again anywhere
// answers the same sale.
func TestArchiveAcrossNodes(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	clk := testclock.New(time.Now().UTC().Truncate(time.Millisecond))
	cfg := engine.Config{Now: clk.Now, SyncInterval: 50 * time.Millisecond}
	open := func(i int, wrap func(*cluster.Store) surge.Store) *engine.Engine {
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i)})
		e, err := engine.Open(ctx, wrap(s), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(); s.Close() })
		return e
	}
	plain := func(s *cluster.Store) surge.Store { return s }
	a := open(0, plain)
	b := open(1, plain)
	c := open(2, func(s *cluster.Store) surge.Store { return deaf{s} })

	name, stock, ends := "Drop", int64(5), clk.Now().Add(time.Hour)
	for _, id := range []string{"old", "keep"} {
		if _, err := a.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, EndsAt: &ends}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "every node serves both sales", func() error {
		for i, e := range []*engine.Engine{a, b, c} {
			if page, _ := e.SalesPage(false, nil, 10); len(page) != 2 {
				return fmt.Errorf("node %d lists %d sales", i, len(page))
			}
		}
		return nil
	})
	out, err := b.Purchase(ctx, engine.PurchaseRequest{SaleID: "old", Purchase: surge.Purchase{UserID: "alice", Quantity: 1}})
	if err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v %v", out, err)
	}
	if _, err := b.Pay(ctx, out.Order.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Archive(ctx, "old"); surge.ErrorCode(err) != surge.CodeNotArchivable {
		t.Fatalf("archive before the end: %v, want not_archivable", err)
	}
	clk.Advance(2 * time.Hour)
	got, err := a.Archive(ctx, "old")
	if err != nil || !got.Archived || got.Remaining != 4 {
		t.Fatalf("archive: %+v %v, want archived with 4 left", got, err)
	}

	check := func(i int, e *engine.Engine) error {
		if page, _ := e.SalesPage(false, nil, 10); len(page) != 1 || page[0].ID != "keep" {
			return fmt.Errorf("node %d lists %v live, want [keep]", i, page)
		}
		if page, _ := e.SalesPage(true, nil, 10); len(page) != 1 || page[0].ID != "old" || page[0].Remaining != 4 {
			return fmt.Errorf("node %d lists %v archived, want [old] with 4 left", i, page)
		}
		if st, err := e.Sale("old"); err != nil || !st.Archived {
			return fmt.Errorf("node %d reads old as %+v (%v)", i, st, err)
		}
		return nil
	}
	eventually(t, 5*time.Second, "every node drops the archived sale", func() error {
		for i, e := range []*engine.Engine{a, b, c} {
			if err := check(i, e); err != nil {
				return err
			}
		}
		return nil
	})
	for i, e := range []*engine.Engine{b, c} {
		if _, err := e.Purchase(ctx, engine.PurchaseRequest{SaleID: "old", Purchase: surge.Purchase{UserID: "bob", Quantity: 1}}); !surge.HasCode(err, surge.CodeSaleNotFound) {
			t.Errorf("node %d: purchase in the archived sale: %v, want sale_not_found", i+1, err)
		}
		if again, err := e.Archive(ctx, "old"); err != nil || !again.Archived || again.Remaining != 4 {
			t.Errorf("node %d: archive again: %+v %v", i+1, again, err)
		}
		var n int
		if err := e.Orders(ctx, "old", func(surge.Order) error { n++; return nil }); err != nil || n != 1 {
			t.Errorf("node %d: orders of the archived sale: %d (%v), want 1", i+1, n, err)
		}
	}
	// A node started now loads only the live sale.
	if err := check(3, open(3, plain)); err != nil {
		t.Error(err)
	}
}

// TestArchiveBetweenRebuildStepsLeavesNoLiveState: a rebuild is two steps
// (PostgreSQL commits a new epoch, then the state is installed in Redis).
// A sale archived between the two has its live state removed by the
// archive before the install writes it back; nothing reads or removes an
// archived sale's state afterwards, so every key it ever had (the
// idempotency hash) would stay in Redis for good. The test runs the two
// steps by hand, as Store.Rebuild does, with the archive between them.
func TestArchiveBetweenRebuildStepsLeavesNoLiveState(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	a := openStore(t, ns, cluster.Config{NodeID: "a", Interval: 100 * time.Millisecond})
	defer a.Close()
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	id := "archived-mid-rebuild"
	snap := archivedBetweenRebuildSteps(t, a, ns, id)
	if _, err := cluster.InstallLive(ctx, a, snap); err != nil { // the second step
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // five leader rounds: none puts it back
	left, err := dialRedis(t).Keys(ctx, ns+":{"+id+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("an archived sale's live state is still in Redis: %v", left)
	}
}

// archivedBetweenRebuildSteps makes sale id on a (a leader), with a paid
// order, runs a rebuild's first step by hand under a's term (the epoch
// bump, then the snapshot), archives the sale, and returns the snapshot
// for the second step, the install, to write back.
func archivedBetweenRebuildSteps(t *testing.T, a *cluster.Store, ns, id string) surge.LiveState {
	t.Helper()
	ctx := context.Background()
	name, stock := "Drop", int64(5)
	start, ends, hold := time.Now().Add(-time.Minute), time.Now().Add(time.Hour), int64(3600)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &ends, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, a, sl)
	outs, _, err := reserve(a, id, surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1})
	if err != nil || outs[0].Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v %v", outs, err)
	}
	if _, err := a.Pay(ctx, outs[0].Order.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, postgresURL(), postgres.Options{Schema: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, ok, err := db.Acquire(ctx, "jobs", cluster.LeaseHolder(a), 5*time.Second) // a's own term, renewed
	if err != nil || !ok {
		t.Fatalf("a's lease: %v %v", ok, err)
	}
	row, err := db.Sale(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	started, err := db.Rebuild(ctx, id, row.Epoch, l) // the first step
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(ctx, started, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ArchiveSale(ctx, id, ends.Add(time.Minute)); err != nil {
		t.Fatalf("archive: %v", err)
	}
	return snap
}
