package cluster_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/storetest"
)

// Cluster mode on a real Redis Cluster of the test's own: three masters
// on loopback (redis-server --cluster-enabled, joined by redis-cli
// --cluster create), PostgreSQL as always.

// TestRedisClusterContract runs the store contract suite unchanged with
// Redis Cluster holding the live state.
func TestRedisClusterContract(t *testing.T) {
	rc := servicetest.StartRedisCluster(t, 3, 0)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) func(t *testing.T) surge.Store {
			ns := namespace(t)
			return func(t *testing.T) surge.Store {
				return openStoreAt(t, rc.URL(), postgresURL(), cluster.Config{NoExpiry: true, Prefix: ns, Schema: ns, Events: true})
			}
		},
	})
}

// bucketMasters are the masters holding the buckets of a sale.
func bucketMasters(t *testing.T, rc *servicetest.RedisCluster, sale string, buckets int) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for b := range buckets {
		m, err := rc.MasterOf(context.Background(), "{"+sale+"#"+strconv.Itoa(b)+"}")
		if err != nil {
			t.Fatal(err)
		}
		out[m] = append(out[m], b)
	}
	return out
}

// TestRedisClusterSpike: three nodes sell one sale split into eight
// buckets, which the cluster spreads over its masters; every guarantee is
// checked against PostgreSQL (multiNodeSpike).
func TestRedisClusterSpike(t *testing.T) {
	rc := servicetest.StartRedisCluster(t, 3, 0)
	const buckets = 8
	multiNodeSpike(t, spikeOptions{buckets: buckets, redisURL: rc.URL(), midway: func(sale string) {
		spread := bucketMasters(t, rc, sale, buckets)
		t.Logf("buckets by master: %v", spread)
		if len(spread) < 2 {
			t.Errorf("the sale's %d buckets sit on %d master(s), want them spread", buckets, len(spread))
		}
	}})
}

// TestRedisClusterFailover: a master holding part of a sale is killed in
// the middle of a spike; its replica takes over after about twice the
// cluster-node-timeout. Meanwhile purchases fail fast with 503 (the
// store's Redis breaker opens on the failed calls, for every bucket), and
// purchases are decided again (201 or 409) once the replica serves; the replica may miss the last
// writes its master acknowledged (replication is asynchronous), which the
// store detects as a rollback and rebuilds from PostgreSQL. Afterwards
// every guarantee holds and every confirmed order is in PostgreSQL.
func TestRedisClusterFailover(t *testing.T) {
	rc := servicetest.StartRedisCluster(t, 3, 1)
	const buckets = 6
	var (
		mu                   sync.Mutex
		killedAt             time.Time
		lastRefused, resumed time.Time
		refused              int
		longest              time.Duration
	)
	// keyCopy 1: once the sale sells out, the nodes would answer its keyed
	// purchases from their copies of its keys without Redis (keycopy.go),
	// and the kill would go unfelt.
	multiNodeSpike(t, spikeOptions{buckets: buckets, redisURL: rc.URL(), retryFor: 30 * time.Second, keyCopy: 1,
		midway: func(sale string) {
			victim, err := rc.MasterOf(context.Background(), "{"+sale+"#0}")
			if err != nil {
				t.Fatal(err)
			}
			spread := bucketMasters(t, rc, sale, buckets)
			t.Logf("killing master %s (buckets %v; all: %v)", victim, spread[victim], spread)
			rc.Kill(victim)
			mu.Lock()
			killedAt = time.Now()
			mu.Unlock()
		},
		answered: func(err error, took time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if killedAt.IsZero() {
				return
			}
			now := time.Now()
			switch {
			case err != nil:
				lastRefused = now
				refused++
			case !lastRefused.IsZero() && resumed.IsZero():
				resumed = now
			}
			longest = max(longest, took)
		},
	})
	rc.WaitHealthy(30 * time.Second)
	if killedAt.IsZero() {
		t.Fatal("the master was never killed")
	}
	if resumed.IsZero() {
		t.Errorf("no purchase was decided after the refusals began (%d refused)", refused)
		return
	}
	t.Logf("after the kill: %d attempts refused with 503, the last %v after it; the first purchase decided after a refusal %v after it; "+
		"the longest a purchase took to be decided, retries included: %v",
		refused, lastRefused.Sub(killedAt).Round(10*time.Millisecond), resumed.Sub(killedAt).Round(10*time.Millisecond),
		longest.Round(10*time.Millisecond))
}
