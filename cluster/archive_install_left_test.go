package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
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

	id := "archived-mid-install"
	// The rebuild's first step by hand, then the archive.
	snap := archivedBetweenRebuildSteps(t, a, ns, id)

	// The install on node n: its Redis is cut once the state is written
	// back, so the removal that follows the archived check fails.
	rc := dialRedis(t)
	meta := ns + ":{" + id + "}:m"
	cut := false
	_, err := cluster.InstallLiveWith(ctx, n, snap, func() {
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

// TestArchiveDuringInstallCheckFailsLeavesNoLiveState: a sale archived
// during a rebuild's install has its live state removed by the archive,
// then written back by the install, whose check that the sale is not
// archived comes next. When PostgreSQL failed that check, the install kept
// the state as if the sale were live: nothing recorded it left (the
// archive had recorded its own removal done), so it stayed in Redis for
// good, whatever the leader's rounds.
func TestArchiveDuringInstallCheckFailsLeavesNoLiveState(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	a := openStore(t, ns, cluster.Config{NodeID: "a", Interval: time.Hour})
	t.Cleanup(func() { a.Close() })
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	pp := servicetest.NewProxy(t, "127.0.0.1:5432")
	n := openStoreAt(t, redisURL(), "postgres://postgres@"+pp.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", Interval: time.Hour})
	t.Cleanup(func() { n.Close() })

	id := "archived-check-cut"
	snap := archivedBetweenRebuildSteps(t, a, ns, id)

	// The install on node n: its PostgreSQL is cut once the state is
	// written back, so the archived check that follows fails.
	rc := dialRedis(t)
	meta := ns + ":{" + id + "}:m"
	cut := false
	_, _ = cluster.InstallLiveWith(ctx, n, snap, func() {
		if !cut && rc.Exists(ctx, meta).Val() == 1 {
			cut = true
			pp.Cut()
		}
	})
	pp.Restore()
	if !cut {
		t.Fatal("the install never wrote the state back: the test proves nothing")
	}
	eventually(t, 5*time.Second, "no live state of the archived sale is left in Redis (the leader's rounds, one after another)", func() error {
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

// TestArchiveRedisCutLeavesNoWaitingRoom: an archive drops the sale's
// waiting room, up to a million buyers in Redis (http drops it after the
// store's archive). When Redis failed right then, the sale's live state
// was recorded left and removed by the leader's round, but its waiting
// room stayed in Redis for good: nothing but another archive call of the
// operator's would ever drop it.
func TestArchiveRedisCutLeavesNoWaitingRoom(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	a := openStore(t, ns, cluster.Config{NodeID: "a", Interval: time.Hour})
	t.Cleanup(func() { a.Close() })
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	rp := servicetest.RedisProxy(t)
	n := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", Interval: time.Hour})
	t.Cleanup(func() { n.Close() })

	id, name, stock := "archived-room", "Drop", int64(5)
	start, ends := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &ends,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 10, Policy: "fifo", TicketSeconds: 60}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, n, sl)
	q := waitroom.Queue{SaleID: id, Schedule: waitroom.Schedule{Start: start, Rate: 10}}
	for i := range 3 {
		if _, _, err := n.Queues(0).Join(ctx, q, fmt.Sprint("buyer", i), start.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	rc := dialRedis(t)
	room := ns + ":{wr:" + id + "}:*"
	if keys, err := rc.Keys(ctx, room).Result(); err != nil || len(keys) == 0 {
		t.Fatalf("the waiting room's keys: %v %v", keys, err)
	}

	// The archive, and the waiting room's drop after it (http's), with
	// Redis cut.
	rp.Cut()
	if _, err := n.ArchiveSale(ctx, id, ends.Add(time.Minute)); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if err := n.Queues(0).Drop(ctx, id); err == nil {
		t.Fatal("the waiting room dropped with Redis cut: the test proves nothing")
	}
	rp.Restore()

	eventually(t, 5*time.Second, "no key of the archived sale is left in Redis (the leader's rounds, one after another)", func() error {
		if !cluster.Round(ctx, a) {
			return fmt.Errorf("a could not take the lease for a round")
		}
		var left []string
		for _, pattern := range []string{ns + ":{" + id + "}:*", room} {
			keys, err := rc.Keys(ctx, pattern).Result()
			if err != nil {
				t.Fatal(err)
			}
			left = append(left, keys...)
		}
		if len(left) > 0 {
			return fmt.Errorf("an archived sale's keys are still in Redis: %v", left)
		}
		return nil
	})
}
