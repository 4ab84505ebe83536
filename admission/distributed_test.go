package admission

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// gcraFake is a shared limit in memory with GCRA semantics, standing in
// for Redis here; redis.Limit is tested against the real server in the
// cluster tests.
type gcraFake struct {
	mu       sync.Mutex
	interval time.Duration
	tol      time.Duration
	tat      map[string]time.Time
	now      func() time.Time
	calls    int
	spent    map[string]int64 // every report, summed
}

func (g *gcraFake) Spend(_ context.Context, spent map[string]int64) (map[string]time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.spent == nil {
		g.spent = map[string]int64{}
	}
	for k, n := range spent {
		g.spent[k] += n
	}
	now := g.now()
	out := map[string]time.Duration{}
	for k, n := range spent {
		tat := g.tat[k]
		if tat.Before(now) {
			tat = now
		}
		tat = tat.Add(time.Duration(n) * g.interval)
		g.tat[k] = tat
		if over := tat.Sub(now) - g.tol; over > 0 {
			out[k] = over
		}
	}
	return out, nil
}

// Two nodes each admit a buyer within their local limit; together they
// exceed it, and after one flush both refuse the buyer.
func TestDistributedHoldsAcrossNodes(t *testing.T) {
	now := time.Now()
	shared := &gcraFake{interval: 100 * time.Millisecond, tol: time.Second, tat: map[string]time.Time{}, now: func() time.Time { return now }}
	nodes := []*Distributed{
		NewDistributed(NewKeyed(rate.Limit(10), 10, 1000, time.Minute), shared, time.Hour, nil),
		NewDistributed(NewKeyed(rate.Limit(10), 10, 1000, time.Minute), shared, time.Hour, nil),
	}
	defer nodes[0].Close()
	defer nodes[1].Close()
	for _, n := range nodes {
		for i := range 8 {
			if ok, _ := n.Allow("alice", now); !ok {
				t.Fatalf("request %d refused locally within the burst", i)
			}
		}
	}
	if ok, _ := nodes[0].Allow("bob", now); !ok {
		t.Fatal("bob refused")
	}
	if shared.calls != 0 {
		t.Fatalf("the request path called the shared state %d times", shared.calls)
	}
	// 16 requests of alice against a burst of 10 at 10/s: the second
	// report puts her over, and that node refuses her at once.
	nodes[0].Flush()
	nodes[1].Flush()
	if ok, wait := nodes[1].Allow("alice", now); ok || wait <= 0 {
		t.Errorf("node 1 admitted alice after the shared limit blocked her (wait %v)", wait)
	}
	// Node 0 learns it when it next reports her: one more request, then
	// refused.
	if ok, _ := nodes[0].Allow("alice", now); !ok {
		t.Fatalf("node 0 refused alice before it heard of the block")
	}
	nodes[0].Flush()
	if ok, wait := nodes[0].Allow("alice", now); ok || wait <= 0 {
		t.Errorf("node 0 admitted alice after its report came back blocked (wait %v)", wait)
	}
	if ok, _ := nodes[1].Allow("bob", now); !ok {
		t.Errorf("bob, within the limit, refused")
	}
	// The block lifts when the shared state says.
	later := now.Add(2 * time.Second)
	if ok, _ := nodes[0].Allow("alice", later); !ok {
		t.Errorf("alice still refused after her block ended")
	}
}

// The local pre-filter refuses on its own, without the shared state.
func TestDistributedLocalPrefilter(t *testing.T) {
	now := time.Now()
	shared := &gcraFake{interval: time.Second, tol: time.Second, tat: map[string]time.Time{}, now: func() time.Time { return now }}
	d := NewDistributed(NewKeyed(rate.Limit(1), 2, 1000, time.Minute), shared, time.Hour, nil)
	defer d.Close()
	d.Allow("k", now)
	d.Allow("k", now)
	if ok, wait := d.Allow("k", now); ok || wait <= 0 {
		t.Errorf("third request in a burst of 2: ok=%v wait=%v", ok, wait)
	}
	if shared.calls != 0 {
		t.Errorf("shared state called %d times", shared.calls)
	}
}

// A key's first request at a node is reported only once a second comes,
// and then both are; a key seen once and then forgotten (two rotations)
// starts over.
func TestDistributedReportsFromTheSecondRequest(t *testing.T) {
	now := time.Now()
	shared := &gcraFake{interval: time.Millisecond, tol: time.Second, tat: map[string]time.Time{}, now: func() time.Time { return now }}
	d := NewDistributed(NewKeyed(rate.Limit(100), 100, 1000, time.Minute), shared, time.Hour, nil)
	defer d.Close()
	allow := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if ok, _ := d.Allow(k, now); !ok {
				t.Fatalf("%s refused", k)
			}
		}
	}
	allow("once", "twice", "thrice", "twice", "thrice", "thrice")
	d.Flush()
	allow("thrice", "late")
	d.Flush()
	allow("late")
	d.Flush()
	d.rotate()
	d.rotate()
	allow("once", "gone")
	d.rotate()
	d.rotate()
	allow("gone")
	d.Flush()
	want := map[string]int64{"twice": 2, "thrice": 4, "late": 2}
	if len(shared.spent) != len(want) {
		t.Errorf("reported %v, want %v", shared.spent, want)
	}
	for k, n := range want {
		if shared.spent[k] != n {
			t.Errorf("reported %d requests of %s, want %d (all: %v)", shared.spent[k], k, n, shared.spent)
		}
	}
}

// A key seen once stays remembered through one rotation (it moves to the
// newer generation when seen again), so its first request is reported.
func TestDistributedRemembersAcrossARotation(t *testing.T) {
	now := time.Now()
	shared := &gcraFake{interval: time.Millisecond, tol: time.Second, tat: map[string]time.Time{}, now: func() time.Time { return now }}
	d := NewDistributed(NewKeyed(rate.Limit(100), 100, 1000, time.Minute), shared, time.Hour, nil)
	defer d.Close()
	d.Allow("k", now)
	d.rotate()
	d.Allow("k", now)
	d.rotate()
	d.Allow("k", now)
	d.Flush()
	if shared.spent["k"] != 3 {
		t.Errorf("reported %d of 3 requests", shared.spent["k"])
	}
}
