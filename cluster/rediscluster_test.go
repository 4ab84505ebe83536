package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
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

// busy keeps the Redis server at addr busy for d (a Lua loop: the server
// answers no one meanwhile, as in a latency spike: a fork, a slow command,
// a swap-in) and returns once the loop has begun.
func busy(t *testing.T, addr string, d time.Duration) <-chan error {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- c.Eval(context.Background(), `
local s = redis.call('TIME')
while true do
  local n = redis.call('TIME')
  if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > tonumber(ARGV[1]) then break end
end
return 1`, nil, d.Microseconds()).Err()
	}()
	probe := goredis.NewClient(&goredis.Options{Addr: addr, ReadTimeout: 50 * time.Millisecond, MaxRetries: -1})
	defer probe.Close()
	for probe.Ping(context.Background()).Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

// A purchase decided while the Redis Cluster master of its sale stalls a
// little longer than the Redis read timeout must take its units once.
// redis.Dial turns go-redis's retries off because "a reserve script whose
// reply was lost may have run, and running it again would take its units
// twice", but a Redis Cluster client still sends a timed-out EVALSHA again
// (its MaxRedirects loop): the script runs twice, the buyer's one order
// takes two units and two of the buyer's limit in Redis, for good (the
// leader sees nothing to repair: Redis is ahead of PostgreSQL and every
// reservation is in PostgreSQL). The sale then refuses stock it has.
//
// The read timeout is lowered in the URL (docs/cluster.md: "override in
// the URL, e.g. ?read_timeout=500ms") so that the stall stays below the
// test cluster's 1 s cluster-node-timeout; with the defaults, a stall of
// 1 to 2 s does the same on a production cluster. Whether the first send
// ran depends on the client's connections, so the stall is tried on up
// to six sales.
func TestRedisClusterStallTakesUnitsOnce(t *testing.T) {
	rc := servicetest.StartRedisCluster(t, 3, 0)
	ns := namespace(t)
	url := rc.URL() + "&read_timeout=300ms"
	s := openStoreAt(t, url, postgresURL(), cluster.Config{Prefix: ns, Schema: ns, Interval: 200 * time.Millisecond, ConfirmAfter: time.Second})
	defer s.Close()
	// Alice buys on a second node, which does not lead (the first holds
	// the lease) and makes no call of its own meanwhile.
	b := openStoreAt(t, url, postgresURL(), cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour})
	defer b.Close()
	ctx := context.Background()
	for trial := range 6 {
		sl := mustSale(t, s, fmt.Sprintf("stall%d", trial), 3, 2)
		// A first purchase: the script has run on that master before, as
		// on any master serving a sale.
		out, _, err := reserve(b, sl.ID, surge.Purchase{UserID: "carol", Quantity: 1})
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("first purchase: %+v %v", out, err)
		}
		confirmed := map[string]surge.Order{out[0].Order.ID: out[0].Order}
		master, err := rc.MasterOf(ctx, "{"+sl.ID+"}")
		if err != nil {
			t.Fatal(err)
		}
		// Idle connections to the master in the pool, as a busy node has.
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = b.Remaining(ctx, sl.ID) }()
		}
		wg.Wait()
		done := busy(t, master, 500*time.Millisecond)
		out, took, perr := reserve(b, sl.ID, surge.Purchase{UserID: "alice", Quantity: 1})
		if e := <-done; e != nil {
			t.Fatalf("stall: %v", e)
		}
		if perr == nil && out[0].Code == surge.CodeReserved {
			confirmed[out[0].Order.ID] = out[0].Order
		}
		// Units Redis took: carol's and alice's at most, whether or not
		// alice's purchase was answered.
		rem, err := s.Remaining(ctx, sl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if taken := sl.Stock - rem; taken <= 2 {
			t.Logf("sale %s: alice's purchase during the stall: %v (took %v); Redis took %d units", sl.ID, perr, took.Round(time.Millisecond), taken)
			continue
		}
		t.Errorf("sale %s: alice's one purchase of 1 unit during the stall (answered %v, %v, took %v) took %d units in Redis (stock %d, remaining %d)",
			sl.ID, out, perr, took.Round(time.Millisecond), sl.Stock-rem-1, sl.Stock, rem)
		time.Sleep(2 * time.Second) // the leader's rounds
		want := sl.Stock - int64(len(confirmed))
		out, _, err = reserve(s, sl.ID, surge.Purchase{UserID: "bob", Quantity: want})
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Errorf("bob buys the %d unit(s) PostgreSQL has left, 2 s later: %v %v, want reserved", want, out[0].Code, err)
		}
		out, _, err = reserve(s, sl.ID, surge.Purchase{UserID: "alice", Quantity: 1})
		if err != nil || out[0].Code != surge.CodeReserved && out[0].Code != surge.CodeSoldOut {
			t.Errorf("alice (1 unit held, limit 2) buys 1 more: %v %v, want reserved or sold_out", out[0].Code, err)
		}
		return
	}
}
