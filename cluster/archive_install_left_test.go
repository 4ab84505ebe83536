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
	a := roundsLeader(t, ns)
	n, rp := redisProxiedNode(t, ns)

	id := "archived-mid-install"
	// The rebuild's first step by hand, then the archive.
	snap := archivedBetweenRebuildSteps(t, a, ns, id)

	// The install on node n: its Redis is cut once the state is written
	// back, so the removal that follows the archived check fails.
	rc := dialRedis(t)
	err := installCutOnWriteBack(t, n, rc, ns, id, snap, rp.Cut)
	rp.Restore()
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if rc.Exists(ctx, ns+":{"+id+"}:m").Val() != 1 {
		t.Fatal("the state is not in Redis after the cut removal: the test proves nothing")
	}
	roundsRemove(t, a, rc, 10*time.Second, "the leader removes the live state of the archived sale", ns+":{"+id+"}:*")
}

// redisProxiedNode opens node n of namespace ns with its Redis behind a
// proxy the test can cut.
func redisProxiedNode(t *testing.T, ns string) (*cluster.Store, *servicetest.Proxy) {
	t.Helper()
	rp := servicetest.RedisProxy(t)
	n := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", Interval: time.Hour})
	t.Cleanup(func() { n.Close() })
	return n, rp
}

// roundsLeader opens a store that leads but runs its rounds only when a
// test says (cluster.Round): a round of its own loop could remove what
// the test must first see in Redis.
func roundsLeader(t *testing.T, ns string) *cluster.Store {
	t.Helper()
	a := openStore(t, ns, cluster.Config{NodeID: "a", Interval: time.Hour})
	t.Cleanup(func() { a.Close() })
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	return a
}

// installCutOnWriteBack runs n's install of snap, the sale archived meanwhile
// (archivedBetweenRebuildSteps), and calls cut once the install has written
// the state back to Redis, so what the install does next fails.
func installCutOnWriteBack(t *testing.T, n *cluster.Store, rc redis.Client, ns, id string, snap surge.LiveState, cut func()) error {
	t.Helper()
	ctx := context.Background()
	meta := ns + ":{" + id + "}:m"
	done := false
	_, err := cluster.InstallLiveWith(ctx, n, snap, func() {
		if !done && rc.Exists(ctx, meta).Val() == 1 {
			done = true
			cut()
		}
	})
	if !done {
		t.Fatal("the install never wrote the state back: the test proves nothing")
	}
	return err
}

// roundsRemove: the leader's rounds, one after another, leave no key
// matching patterns in Redis within d.
func roundsRemove(t *testing.T, a *cluster.Store, rc redis.Client, d time.Duration, what string, patterns ...string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, d, what+" (the leader's rounds, one after another)", func() error {
		if !cluster.Round(ctx, a) {
			return fmt.Errorf("a could not take the lease for a round")
		}
		var left []string
		for _, pattern := range patterns {
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

// TestArchiveDuringInstallCheckFailsLeavesNoLiveState: a sale archived
// during a rebuild's install has its live state removed by the archive,
// then written back by the install, whose check that the sale is not
// archived comes next. When PostgreSQL failed that check, the install kept
// the state as if the sale were live: nothing recorded it left (the
// archive had recorded its own removal done), so it stayed in Redis for
// good, whatever the leader's rounds.
func TestArchiveDuringInstallCheckFailsLeavesNoLiveState(t *testing.T) {
	ns := namespace(t)
	a := roundsLeader(t, ns)
	pp := servicetest.NewProxy(t, "127.0.0.1:5432")
	n := openStoreAt(t, redisURL(), "postgres://postgres@"+pp.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", Interval: time.Hour})
	t.Cleanup(func() { n.Close() })

	id := "archived-check-cut"
	snap := archivedBetweenRebuildSteps(t, a, ns, id)

	// The install on node n: its PostgreSQL is cut once the state is
	// written back, so the archived check that follows fails.
	rc := dialRedis(t)
	_ = installCutOnWriteBack(t, n, rc, ns, id, snap, pp.Cut)
	pp.Restore()
	roundsRemove(t, a, rc, 5*time.Second, "no live state of the archived sale is left in Redis", ns+":{"+id+"}:*")
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
	a := roundsLeader(t, ns)
	n, rp := redisProxiedNode(t, ns)

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

	// The queue's keys go; the mark that refuses a join which read the
	// sale before the archive stays for a while, not for good.
	queue := []string{ns + ":{" + id + "}:*"}
	for _, k := range []string{"users", "seq", "draws", "slots", "last", "drawn"} {
		queue = append(queue, ns+":{wr:"+id+"}:"+k)
	}
	roundsRemove(t, a, rc, 5*time.Second, "no key of the archived sale is left in Redis", queue...)
	if ttl, err := rc.TTL(ctx, ns+":{wr:"+id+"}:dropped").Result(); err != nil || ttl <= 0 || ttl > redis.DroppedFor {
		t.Fatalf("the dropped queue's mark: TTL %v (%v); want one within %v", ttl, err, redis.DroppedFor)
	}
}
