package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/cluster"
)

// The shared GCRA limit on the real Redis: requests within rate and burst
// pass, the excess blocks for as long as GCRA says, keys are independent.
func TestSharedLimit(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{})
	defer s.Close()
	l := s.SharedLimit("buyer", 10, 5) // 100 ms per request, 500 ms of burst
	ctx := context.Background()
	blocked, err := l.Spend(ctx, map[string]int64{"alice": 3, "bob": 1})
	if err != nil || len(blocked) != 0 {
		t.Fatalf("within the burst: %v, %v", blocked, err)
	}
	blocked, err = l.Spend(ctx, map[string]int64{"alice": 5})
	if err != nil {
		t.Fatal(err)
	}
	// 8 requests at once: 800 ms of arrivals against 500 ms of tolerance.
	if w := blocked["alice"]; w < 200*time.Millisecond || w > 310*time.Millisecond {
		t.Errorf("alice blocked for %v, want about 300ms", w)
	}
	if _, ok := blocked["bob"]; ok {
		t.Errorf("bob blocked")
	}
	time.Sleep(400 * time.Millisecond)
	blocked, err = l.Spend(ctx, map[string]int64{"alice": 1})
	if err != nil || len(blocked) != 0 {
		t.Errorf("after the block: %v, %v", blocked, err)
	}
}

// TestSharedLimitNoBurstAfterABlock: a buyer spread over two nodes is
// blocked on both by the shared limit (each node admitted its burst).
// While blocked, each node's own bucket refilled; when the block ends the
// buyer has paid his debt and no more, yet each node let him through a
// whole burst again at once: two bursts where the shared limit allows
// none, after every block. A node now starts the key's bucket empty at
// the block's end: it admits only what its rate gives from then on.
func TestSharedLimitNoBurstAfterABlock(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{})
	defer s.Close()
	const perSecond, burst = 1, 4 // 1 s per request, 4 s of burst
	node := func() *admission.Distributed {
		d := admission.NewDistributed(admission.NewKeyed(perSecond, burst, 1000, time.Minute),
			s.SharedLimit("buyer", perSecond, burst), time.Hour, nil) // flushed by hand
		t.Cleanup(d.Close)
		return d
	}
	a, b := node(), node()
	for _, n := range []*admission.Distributed{a, b} {
		for i := range burst {
			if ok, _ := n.Allow("k", time.Now()); !ok {
				t.Fatalf("request %d of a node's burst refused", i+1)
			}
		}
	}
	a.Flush() // 4 of 4: not over
	b.Flush() // 8 of 4: over by 4 s
	blockedUntil := func(n *admission.Distributed, name string) time.Time {
		t.Helper()
		now := time.Now()
		ok, wait := n.Allow("k", now)
		if ok || wait < 2*time.Second {
			t.Fatalf("node %s after reporting the key over the limit: allowed %v, wait %v; want blocked for seconds", name, ok, wait)
		}
		return now.Add(wait)
	}
	endB := blockedUntil(b, "b")
	// Node a learns of the block when it next reports the key: once its
	// bucket has a token again.
	deadline := time.Now().Add(10 * time.Second)
	for ok := false; !ok; {
		if time.Now().After(deadline) {
			t.Fatal("node a's bucket did not refill")
		}
		time.Sleep(50 * time.Millisecond)
		ok, _ = a.Allow("k", time.Now())
	}
	a.Flush()
	endA := blockedUntil(a, "a")
	time.Sleep(time.Until(endA.Add(20 * time.Millisecond)))
	time.Sleep(time.Until(endB.Add(20 * time.Millisecond)))
	now := time.Now()
	admitted := 0
	for name, n := range map[string]*admission.Distributed{"a": a, "b": b} {
		here := 0
		for range 2 * burst {
			if ok, _ := n.Allow("k", now); ok {
				here++
			}
		}
		// The wait a blocked node answered is when a request passes.
		if here == 0 {
			t.Errorf("node %s admitted nothing past the wait it answered while the key was blocked", name)
		}
		admitted += here
	}
	// What each node's rate gives since its block ended (a token's time
	// before the wait it answered), and one more each for rounding; the
	// shared limit itself allows none at once.
	bound := int(now.Sub(endA).Seconds()*perSecond) + int(now.Sub(endB).Seconds()*perSecond) + 4
	if bound >= 2*burst {
		t.Skipf("the test was held up %v past the blocks' end: both buckets would have refilled anyway", now.Sub(endA))
	}
	if admitted > bound {
		t.Fatalf("at the blocks' end the two nodes admitted %d requests of a buyer whose debt was just paid; want at most %d (each node's rate since then), not each node's burst of %d again",
			admitted, bound, burst)
	}
}

// TestSharedLimitKeysStandAlone: the shared limit's report is one
// pipeline of a call per key, and a call that failed (here the key of
// another type, as a shard down would) threw away the answers of every
// other key of the round, although Redis had recorded their spends: a
// buyer over the limit was let through for another interval. Each key's
// answer now stands on its own.
func TestSharedLimitKeysStandAlone(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{})
	defer s.Close()
	ctx := context.Background()
	rc := dialRedis(t)
	if err := rc.RPush(ctx, ns+":rl:buyer:mallory", "not a GCRA time").Err(); err != nil {
		t.Fatal(err)
	}
	shared := s.SharedLimit("buyer", 1, 1) // 1 s per request, 1 s of burst
	// The node's own bucket holds 4: the shared limit alone blocks alice.
	d := admission.NewDistributed(admission.NewKeyed(1, 4, 1000, time.Minute), shared, time.Hour, nil) // flushed by hand
	defer d.Close()
	now := time.Now()
	for _, k := range []string{"alice", "alice", "alice", "alice", "mallory", "mallory"} {
		if ok, _ := d.Allow(k, now); !ok {
			t.Fatalf("%s refused within the node's burst", k)
		}
	}
	d.Flush() // alice: 4 requests against 1 of burst, over by about 3 s; mallory's call fails
	ok, wait := d.Allow("alice", time.Now())
	if ok || wait < 2*time.Second {
		t.Fatalf("alice after a report that found her over the shared limit (another key's call failed): allowed %v, wait %v; want blocked for about 3 s", ok, wait)
	}
	// Redis recorded alice's spends, and says so to the next report too.
	blocked, err := shared.Spend(ctx, map[string]int64{"alice": 1, "mallory": 1})
	if err == nil {
		t.Errorf("a report with a failed call answered no error")
	}
	if w := blocked["alice"]; w < 3*time.Second {
		t.Errorf("Spend with a failed call: blocked %v, err %v; want alice blocked about 4 s", blocked, err)
	}
}
