package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// TestScanStagesReadsEveryMaster: on a Redis Cluster each master holds
// its own slots' keys and SCAN reads one server: the pass over the keys
// for staging keys that crashed installs left must read every master
// whole, and find no other key.
func TestScanStagesReadsEveryMaster(t *testing.T) {
	ctx := context.Background()
	rc := servicetest.StartRedisCluster(t, 3, 0)
	c, err := redis.Dial(ctx, rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	masters := map[string]bool{}
	for i := range 30 {
		// A staging key of a bucket, and keys of the live state beside it.
		for _, k := range []string{fmt.Sprintf("p:{s%d#1}:s7:o", i), fmt.Sprintf("p:{s%d#1}:o", i), fmt.Sprintf("p:{s%d#1}:st", i)} {
			if err := c.SAdd(ctx, k, "x").Err(); err != nil {
				t.Fatal(err)
			}
		}
		m, err := rc.MasterOf(ctx, fmt.Sprintf("p:{s%d#1}:o", i))
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the keys are on %d master(s); the test needs them spread", len(masters))
	}
	st := redis.New(c, "p")
	var pass redis.StagePass
	found := map[string]bool{}
	for round := 0; ; round++ {
		got, done, err := st.ScanStages(ctx, &pass, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if s.Epoch != 7 || s.Key != "p:{"+s.Sale+"#1}:s7:o" {
				t.Errorf("found %+v, not a staging key of epoch 7", s)
			}
			found[s.Sale] = true
		}
		if done {
			break
		}
		if round > 100 {
			t.Fatal("the pass never ended")
		}
	}
	if len(found) != 30 {
		t.Errorf("the pass found the staging keys of %d sales of 30, over %d masters", len(found), len(masters))
	}
}

// TestScanSalesAcrossClusterFailover: a replica that takes over from its
// master (an operator's CLUSTER FAILOVER: no call fails) is a master at a
// new address, and the old one is a master no more. The pass over the keys
// must still end, having read every sale's keys. It waited for the old
// address to be read whole, and never ended: the leader, which starts the
// next pass only when one ends, never again removed the live state of an
// archived sale that Redis brought back.
func TestScanSalesAcrossClusterFailover(t *testing.T) {
	ctx := context.Background()
	rc := servicetest.StartRedisCluster(t, 3, 1)
	const sales = 1500
	c := withSales(ctx, t, rc.URL(), sales)
	st := redis.New(c, "p")
	scan, found := salesScan(ctx, t, st, 10)
	if scan() {
		t.Fatal("the pass ended in its first round, of about ten keys a master")
	}
	old, err := rc.MasterOf(ctx, "p:{s0}:st")
	if err != nil {
		t.Fatal(err)
	}
	promoted := rc.Failover(old)
	servicetest.Eventually(t, 30*time.Second, "the client names "+promoted+" a master and "+old+" none", func() error {
		var mu sync.Mutex
		masters := map[string]bool{}
		if err := c.(*goredis.ClusterClient).ForEachMaster(ctx, func(_ context.Context, m *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			masters[m.Options().Addr] = true
			return nil
		}); err != nil {
			return err
		}
		if !masters[promoted] || masters[old] {
			return fmt.Errorf("its masters: %v", masters)
		}
		return nil
	})
	for round := 0; !scan(); round++ {
		if round > 2000 {
			t.Fatalf("the pass never ended: %d rounds after the failover, %d sales of %d found", round, len(found), sales)
		}
	}
	if len(found) != sales {
		t.Errorf("the pass ended having found %d sales of %d", len(found), sales)
	}
}

// TestScanSalesAcrossSentinelFailover: through Sentinel the client calls
// whichever server is the master, under one address ("FailoverClient"). A
// SCAN cursor is a place in one server's hash table, hashed with a seed
// drawn when that server started: the pass went on on the promoted replica
// from where it was on the old master, and ended having skipped, at
// random, keys it had not read yet (as it did after a single server's
// restart).
func TestScanSalesAcrossSentinelFailover(t *testing.T) {
	ctx := context.Background()
	rs := servicetest.StartRedisSentinel(t)
	const sales = 2000
	c := withSales(ctx, t, rs.URL(), sales)
	// Every key on the replica too before it takes over.
	if n, err := c.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d replicas, %v", n, err)
	}
	st := redis.New(c, "p")
	scan, found := salesScan(ctx, t, st, 20)
	for len(found) < sales/2 {
		if scan() {
			t.Fatalf("the pass ended before the failover, having found %d sales of %d", len(found), sales)
		}
	}
	rs.Failover()
	_, port, _ := strings.Cut(rs.MasterAddr(), ":")
	servicetest.Eventually(t, 30*time.Second, "the client calls the new master", func() error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "tcp_port:"+port+"\r\n") {
			return errors.New("it still calls the old one")
		}
		return nil
	})
	for round := 0; !scan(); round++ {
		if round > 2000 {
			t.Fatalf("the pass never ended: %d rounds after the failover, %d sales of %d found", round, len(found), sales)
		}
	}
	if len(found) != sales {
		t.Errorf("the pass ended having found %d sales of %d", len(found), sales)
	}
}

// salesScan returns a step of one pass of ScanSales over st, count keys
// a call, which reports whether the pass has ended, and the sales found
// by the steps so far.
func salesScan(ctx context.Context, t *testing.T, st *redis.Stock, count int64) (func() bool, map[string]bool) {
	var pass redis.SalePass
	found := map[string]bool{}
	return func() bool {
		t.Helper()
		got, done, err := st.ScanSales(ctx, &pass, count)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			found[s] = true
		}
		return done
	}, found
}

// withSales dials the Redis at url and writes the live-state key of sales
// sales, s0 to s(sales-1), under the prefix "p".
func withSales(ctx context.Context, t *testing.T, url string, sales int) redis.Client {
	t.Helper()
	c, err := redis.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pipe := c.Pipeline()
	for i := range sales {
		pipe.Set(ctx, fmt.Sprintf("p:{s%d}:st", i), "x", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
