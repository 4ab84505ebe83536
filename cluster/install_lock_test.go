package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// The two costs a leader that leaves a sale alone while a change installs
// its new epoch (TestRoundAcrossInstallInFlightKeepsItsEpoch) must not
// have: a node that dies mid-install must not keep the sale answering 503
// until its install is deemed dead, and a Redis that comes back with the
// record of an install under way (a snapshot taken mid-install) must not
// delay the rebuild. Either way the leader's first round rebuilds the
// sale, and a purchase right after it is reserved.

// buyOnce makes one purchase, without retrying: a 503 is an error.
func buyOnce(s *cluster.Store, sale, user string) error {
	out, _, err := reserve(s, sale, surge.Purchase{UserID: user, IdempotencyKey: "k-" + user, Quantity: 1})
	if err == nil && out[0].Err != nil {
		err = out[0].Err
	}
	if err == nil && out[0].Code != surge.CodeReserved {
		err = fmt.Errorf("%s", out[0].Code)
	}
	return err
}

// TestInstallerDiedRebuiltInOneRound: the node that changed a sale dies
// (its connections close, as the kernel closes a killed process's) while
// the install of the change's epoch is in flight. PostgreSQL ends its
// session, and with it the install lock, at once: the leader's next round
// rebuilds the sale, and a purchase right after it is reserved.
func TestInstallerDiedRebuiltInOneRound(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	leader := openStore(t, ns, cluster.Config{NodeID: "leader", Interval: time.Hour, LeaseTTL: time.Minute})
	eventuallyLeads(t, leader, 10*time.Second, "the leader leads")
	t.Cleanup(func() { leader.Close() })
	pgp, rp := servicetest.NewProxy(t, "127.0.0.1:5432"), servicetest.RedisProxy(t)
	doomed := openStoreAt(t, "redis://"+rp.Addr+"/0", "postgres://postgres@"+pgp.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "doomed", Interval: time.Hour, LeaseTTL: time.Minute, CallTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { doomed.Close() })
	mustSale(t, leader, "died", 10, 10)
	if !cluster.Round(ctx, leader) {
		t.Fatal("the leader could not take the lease")
	}

	// The dead node does nothing more: its change stays in the hook until
	// the test ends.
	died, gone := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(gone) })
	cluster.BeforeInstall(doomed, func() {
		pgp.Cut()
		rp.Cut()
		close(died)
		<-gone
	})
	go func() {
		_, _ = doomed.UpdateSale(ctx, "died", surge.SalePatch{Stock: new(int64(20))}, surge.At(time.Now()))
	}()
	<-died
	killed := time.Now()
	// PostgreSQL sees the connection close and ends the session at once.
	lock := servicetest.Conn(t, ns)
	eventually(t, 2*time.Second, "PostgreSQL frees the install lock of the node that died", func() error {
		var free bool
		err := lock.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('surge.install/' || current_schema() || '/died', 0))`).Scan(&free)
		if err != nil || !free {
			return fmt.Errorf("held (%v)", err)
		}
		_, err = lock.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		return err
	})
	t.Logf("the install lock was free %v after the node died", time.Since(killed).Round(time.Millisecond))
	if !cluster.Round(ctx, leader) {
		t.Fatal("the round lost the lease")
	}
	if err := buyOnce(leader, "died", "alice"); err != nil {
		t.Errorf("a purchase after the leader's first round since the installing node died: %v; want reserved", err)
	}
	sl, err := leader.Sale(ctx, "died")
	if err != nil || sl.Stock != 20 {
		t.Errorf("the sale after the change: %+v, %v; want stock 20", sl, err)
	}
}

// TestRedisRolledBackMidInstallRebuiltInOneRound: Redis comes back from a
// snapshot taken while a change's install was under way (the sale's state
// at the older epoch, the install's record of its epoch and its staging
// keys half written), after the change was answered. The leader's first
// round rebuilds the sale, as without the install lock, and a purchase
// right after it is reserved.
func TestRedisRolledBackMidInstallRebuiltInOneRound(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	leader, changer := leaderAndOther(t, ns, "back")
	if err := buyOnce(leader, "back", "bob"); err != nil {
		t.Fatal(err)
	}
	rc := dialRedis(t)
	prefix := ns + ":{back}:"
	dumps := map[string]string{}
	var once sync.Once
	cluster.BeforeInstall(changer, func() {
		once.Do(func() {
			// The snapshot: taken once the install recorded its epoch and
			// staged part of the state, as its first writes do.
			var epoch int64
			if err := servicetest.Conn(t, ns).QueryRow(ctx, `SELECT epoch FROM sales WHERE id = 'back'`).Scan(&epoch); err != nil {
				t.Fatal(err)
			}
			stage := prefix + "s" + strconv.FormatInt(epoch, 10) + ":"
			if err := rc.SAdd(ctx, prefix+"st", epoch).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rc.HSet(ctx, stage+"u", "bob", 1).Err(); err != nil {
				t.Fatal(err)
			}
			keys, err := rc.Keys(ctx, prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if dumps[k], err = rc.Dump(ctx, k).Result(); err != nil {
					t.Fatal(err)
				}
			}
		})
	})
	if _, err := changer.UpdateSale(ctx, "back", surge.SalePatch{Stock: new(int64(20))}, surge.At(time.Now())); err != nil {
		t.Fatalf("change: %v", err)
	}
	if len(dumps) == 0 {
		t.Fatal("the change installed no new epoch")
	}
	if err := buyOnce(changer, "back", "carol"); err != nil {
		t.Fatalf("a purchase right after the change: %v", err)
	}
	// Redis reloads the snapshot.
	keys, err := rc.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	for k, d := range dumps {
		if err := rc.Restore(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if !cluster.Round(ctx, leader) {
		t.Fatal("the round lost the lease")
	}
	if err := buyOnce(leader, "back", "dave"); err != nil {
		t.Errorf("a purchase after the leader's first round since Redis came back from a snapshot taken mid-install: %v; want reserved", err)
	}
}
