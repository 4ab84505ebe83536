package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestArchiveDuringInstallRedisCutLeavesNoLiveState: a sale archived
// during a rebuild's install has its live state removed by the archive,
// then written back by the install, which finds the sale archived and
// removes it again. When Redis failed right at that removal, the state
// stayed in Redis for good: the archive had already recorded it removed
// (live_left cleared), so the leader's round never looked for it. The
// leader must remove it.
func TestArchiveDuringInstallRedisCutLeavesNoLiveState(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	// a leads, but runs its rounds only when the test says (Round): a
	// round of its own loop could remove the state the install leaves
	// before the test has seen it there.
	a := openStore(t, ns, cluster.Config{NodeID: "a", Interval: time.Hour})
	t.Cleanup(func() { a.Close() })
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	rp := servicetest.RedisProxy(t)
	n := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", Interval: time.Hour})
	t.Cleanup(func() { n.Close() })

	id, name, stock := "archived-mid-install", "Drop", int64(5)
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

	// The rebuild's first step, by hand as in
	// TestArchiveBetweenRebuildStepsLeavesNoLiveState, then the archive.
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
	started, err := db.Rebuild(ctx, id, row.Epoch, l)
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

	// The install on node n: its Redis is cut once the state is written
	// back, so the removal that follows the archived check fails.
	rc := dialRedis(t)
	meta := ns + ":{" + id + "}:m"
	cut := false
	_, err = cluster.InstallLiveWith(ctx, n, snap, func() {
		if !cut && rc.Exists(ctx, meta).Val() == 1 {
			cut = true
			rp.Cut()
		}
	})
	rp.Restore()
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if !cut {
		t.Fatal("the install never wrote the state back: the test proves nothing")
	}
	if rc.Exists(ctx, meta).Val() != 1 {
		t.Fatal("the state is not in Redis after the cut removal: the test proves nothing")
	}
	eventually(t, 10*time.Second, "the leader removes the live state of the archived sale (its rounds, one after another)", func() error {
		if !cluster.Round(ctx, a) {
			return fmt.Errorf("a could not take the lease for a round")
		}
		left, err := rc.Keys(ctx, ns+":{"+id+"}:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			return fmt.Errorf("an archived sale's live state is still in Redis: %v", left)
		}
		return nil
	})
}
