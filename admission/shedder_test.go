package admission

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// simStore models the store behind the shedder: up to capacity requests
// are served side by side in service time (as a group commit does); past
// it the excess shares the store, so latency grows in proportion to the
// concurrency (processor sharing, the M/G/1-PS queue). Each latency is
// jittered by ±10% with a seeded generator, so runs are deterministic.
type simStore struct {
	capacity int
	service  time.Duration
	rng      *rand.Rand
}

func newSimStore(capacity int, service time.Duration) *simStore {
	return &simStore{capacity: capacity, service: service, rng: rand.New(rand.NewPCG(1, 2))}
}

func (s *simStore) latency(inFlight int) time.Duration {
	d := s.service
	if inFlight > s.capacity {
		d = d * time.Duration(inFlight) / time.Duration(s.capacity)
	}
	return time.Duration(float64(d) * (0.9 + 0.2*s.rng.Float64()))
}

// step offers the store a wave of concurrent requests: the shedder admits
// what it will, the store serves them together, and each is released with
// its latency. No goroutines and no clock: the latencies are fed directly.
func step(t *testing.T, sh *Shedder, st *simStore, offered int) (admitted, shed int) {
	t.Helper()
	limit := sh.Limit()
	releases := make([]func(time.Duration, bool), 0, offered)
	for range offered {
		release, ok := sh.Acquire()
		if !ok {
			shed++
			continue
		}
		releases = append(releases, release)
	}
	if len(releases) > limit {
		t.Fatalf("admitted %d with a limit of %d", len(releases), limit)
	}
	if shed > 0 && len(releases) < limit {
		t.Fatalf("shed %d while only %d of a limit of %d were in flight", shed, len(releases), limit)
	}
	for _, release := range releases {
		release(st.latency(len(releases)), false)
	}
	if n := sh.InFlight(); n != 0 {
		t.Fatalf("%d in flight after every request was released", n)
	}
	return len(releases), shed
}

// phase runs steps waves and reports the range the limit took in the last
// tail of them and how many were shed in those.
func phase(t *testing.T, sh *Shedder, st *simStore, offered, steps, tail int) (lo, hi, shedTail, shedSteps int) {
	t.Helper()
	lo = int(^uint(0) >> 1)
	for i := range steps {
		_, shed := step(t, sh, st, offered)
		if i >= steps-tail {
			lo, hi = min(lo, sh.Limit()), max(hi, sh.Limit())
			shedTail += shed
			if shed > 0 {
				shedSteps++
			}
		}
	}
	return lo, hi, shedTail, shedSteps
}

func TestShedderConvergesAndRecovers(t *testing.T) {
	sh := NewShedder(ShedderConfig{MinLimit: 4, MaxLimit: 2000})
	st := newSimStore(100, 5*time.Millisecond)

	// A spike of 1000 concurrent buyers on a store that serves 100 at a
	// time: slow start finds the knee, then the limit saws between the
	// capacity (no queue) and Tolerance × capacity (the queue's latency
	// reaching twice the baseline), and the rest is shed.
	lo, hi, shed, shedSteps := phase(t, sh, st, 1000, 100, 50)
	t.Logf("capacity 100, offered 1000: limit in [%d, %d], %d shed in %d of the last 50 waves", lo, hi, shed, shedSteps)
	if lo < 50 || hi > 250 {
		t.Fatalf("limit ranged over [%d, %d], want it near the capacity 100 (within [50, 250])", lo, hi)
	}
	if shedSteps != 50 {
		t.Fatalf("shed in %d of the last 50 overloaded waves, want all", shedSteps)
	}

	// The store degrades to a tenth of its capacity (a slow disk, a
	// neighbour's I/O): latency grows, and the limit follows it down.
	st.capacity = 10
	lo, hi, shed, _ = phase(t, sh, st, 1000, 60, 40)
	t.Logf("capacity 10: limit in [%d, %d], %d shed", lo, hi, shed)
	if hi > 25 {
		t.Fatalf("limit reached %d on a store that serves 10 at a time, want at most 25", hi)
	}
	if lo < 4 {
		t.Fatalf("limit %d below MinLimit", lo)
	}

	// The store recovers: latency back at the baseline, the limit grows
	// back to the capacity.
	st.capacity = 100
	lo, hi, _, _ = phase(t, sh, st, 1000, 60, 30)
	t.Logf("capacity 100 again: limit in [%d, %d]", lo, hi)
	if lo < 50 || hi > 250 {
		t.Fatalf("limit ranged over [%d, %d] after the store recovered, want it back near 100", lo, hi)
	}

	// The load drops below what the store can take: nothing is shed, and
	// the limit does not creep up on the quiet (app-limited) traffic.
	before := sh.Limit()
	lo, hi, shed, _ = phase(t, sh, st, 30, 500, 500)
	t.Logf("offered 30: limit in [%d, %d], %d shed", lo, hi, shed)
	if shed != 0 {
		t.Fatalf("%d requests shed with 30 offered to a store serving 100", shed)
	}
	if hi > max(before, 60) {
		t.Fatalf("limit grew from %d to %d on traffic that never used half of it", before, hi)
	}
}

func TestShedderLoadDropsAfterCollapse(t *testing.T) {
	// After a stall has pushed the limit down, the load falling to a level
	// the store handles easily must stop the shedding: requests at the
	// limit are evidence it can grow.
	sh := NewShedder(ShedderConfig{MinLimit: 4, MaxLimit: 2000})
	st := newSimStore(100, 5*time.Millisecond)
	phase(t, sh, st, 1000, 60, 1)
	st.capacity = 5
	phase(t, sh, st, 1000, 60, 1)
	if l := sh.Limit(); l > 12 {
		t.Fatalf("limit %d after the stall, want it collapsed", l)
	}
	st.capacity = 100
	_, _, shed, _ := phase(t, sh, st, 60, 100, 50)
	if shed != 0 {
		t.Fatalf("still shedding %d requests of a load of 60 the store serves at once", shed)
	}
}

func TestShedderRelearnsSlowerStore(t *testing.T) {
	// The store becomes three times slower for good. At first that looks
	// like queueing and the limit falls to the floor; once the fast
	// latencies leave the Window, the slower latency is the new baseline
	// and the limit grows back to the store's concurrency.
	const window = 20
	sh := NewShedder(ShedderConfig{MinLimit: 4, MaxLimit: 2000, Window: window})
	st := newSimStore(100, 5*time.Millisecond)
	phase(t, sh, st, 1000, 60, 1)
	st.service = 15 * time.Millisecond
	lo, _, _, _ := phase(t, sh, st, 1000, 10, 10)
	if lo > 8 {
		t.Fatalf("limit stayed at %d or more when latency tripled, want it down to the floor", lo)
	}
	lo, hi, _, _ := phase(t, sh, st, 1000, window+100, 30)
	t.Logf("3x slower store: limit in [%d, %d] after relearning", lo, hi)
	if lo < 50 || hi > 250 {
		t.Fatalf("limit ranged over [%d, %d], want it back near the capacity 100", lo, hi)
	}
}

func TestShedderStaysWithinBounds(t *testing.T) {
	// Arbitrary latencies, drops and loads, from a seeded generator.
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := ShedderConfig{MinLimit: 3, MaxLimit: 70, InitialLimit: 10, Window: 5}
	sh := NewShedder(cfg)
	var held []func(time.Duration, bool)
	for i := range 200_000 {
		if rng.IntN(2) == 0 {
			if release, ok := sh.Acquire(); ok {
				held = append(held, release)
			}
		} else if len(held) > 0 {
			j := rng.IntN(len(held))
			held[j](time.Duration(rng.ExpFloat64()*float64(time.Millisecond)), rng.IntN(50) == 0)
			held[j] = held[len(held)-1]
			held = held[:len(held)-1]
		}
		if l := sh.Limit(); l < cfg.MinLimit || l > cfg.MaxLimit {
			t.Fatalf("op %d: limit %d outside [%d, %d]", i, l, cfg.MinLimit, cfg.MaxLimit)
		}
		if sh.InFlight() != len(held) {
			t.Fatalf("op %d: InFlight %d, %d held", i, sh.InFlight(), len(held))
		}
	}
	// Also pinned to the bounds by sustained signals either way.
	grow := NewShedder(cfg)
	st := newSimStore(1000, time.Millisecond)
	phase(t, grow, st, 500, 200, 1)
	if l := grow.Limit(); l != cfg.MaxLimit {
		t.Fatalf("limit %d under a store with room to spare, want MaxLimit %d", l, cfg.MaxLimit)
	}
	for range 20 {
		for _, release := range acquireN(t, grow, grow.Limit()) {
			release(time.Millisecond, true)
		}
	}
	if l := grow.Limit(); l != cfg.MinLimit {
		t.Fatalf("limit %d after rounds of nothing but drops, want MinLimit %d", l, cfg.MinLimit)
	}
}

// grown returns a shedder whose limit has grown to at least n under a store
// with room to spare, with nothing in flight.
func grown(t *testing.T, n int) *Shedder {
	t.Helper()
	sh := NewShedder(ShedderConfig{MinLimit: 2, MaxLimit: 1000})
	st := newSimStore(10_000, time.Millisecond)
	for sh.Limit() < n {
		step(t, sh, st, 2*n)
	}
	return sh
}

func acquireN(t *testing.T, sh *Shedder, n int) []func(time.Duration, bool) {
	t.Helper()
	out := make([]func(time.Duration, bool), n)
	for i := range out {
		release, ok := sh.Acquire()
		if !ok {
			t.Fatalf("Acquire %d of %d refused under a limit of %d", i+1, n, sh.Limit())
		}
		out[i] = release
	}
	return out
}

func TestShedderDropHalvesOncePerRound(t *testing.T) {
	sh := grown(t, 64)
	l := sh.Limit()
	held := acquireN(t, sh, 10)

	held[0](0, true) // e.g. the engine answered overloaded
	if got := sh.Limit(); got != l/2 && got != (l+1)/2 {
		t.Fatalf("limit %d after a drop, want %d halved", got, l)
	}
	l = sh.Limit()
	// More drops among requests admitted before the first answer the
	// same overload: no further cut.
	held[1](10*time.Second, true)
	held[2](10*time.Second, true)
	if got := sh.Limit(); got != l {
		t.Fatalf("limit %d after more drops of the same wave, want it held at %d", got, l)
	}
	for _, release := range held[3:] {
		release(time.Millisecond, false)
	}
	// A drop of a request admitted afterwards is news: halve again.
	held = acquireN(t, sh, 2)
	held[0](0, true)
	if got := sh.Limit(); got >= l {
		t.Fatalf("limit %d after a drop in a new round, want below %d", got, l)
	}
	held[1](time.Millisecond, false)
}

func TestShedderDrainsBeforeJudgingAgain(t *testing.T) {
	sh := grown(t, 64)
	l := sh.Limit()
	slow := 20 * time.Millisecond // baseline is ~1ms

	// Cohort A fills the limit; half of it completes slowly, cohort B
	// takes the freed slots, then A's other half completes: the round
	// (l completions) ends slow, and the limit falls.
	a := acquireN(t, sh, l)
	for _, release := range a[:l/2] {
		release(slow, false)
	}
	b := acquireN(t, sh, l/2)
	for _, release := range a[l/2:] {
		release(slow, false)
	}
	cut := sh.Limit()
	if cut >= l {
		t.Fatalf("limit %d after a round at 20x the baseline, want below %d", cut, l)
	}
	// B was admitted under the old limit and is as slow; it must not cut
	// the limit a second time.
	for _, release := range b {
		release(slow, false)
	}
	if got := sh.Limit(); got != cut {
		t.Fatalf("limit %d after the requests admitted before the cut finished, want it held at %d", got, cut)
	}
	// A full round admitted after the cut that is still slow does cut.
	for _, release := range acquireN(t, sh, cut) {
		release(slow, false)
	}
	if got := sh.Limit(); got >= cut {
		t.Fatalf("limit %d after a slow round admitted under it, want below %d", got, cut)
	}
}

func TestShedderAcquire(t *testing.T) {
	sh := NewShedder(ShedderConfig{MinLimit: 1, InitialLimit: 8})
	held := acquireN(t, sh, 8)
	if _, ok := sh.Acquire(); ok {
		t.Fatal("9th Acquire admitted under a limit of 8")
	}
	if n := sh.InFlight(); n != 8 {
		t.Fatalf("InFlight = %d, want 8", n)
	}
	// Latency 0: the slot comes back, and no sample is taken.
	held[0](0, false)
	if n := sh.InFlight(); n != 7 {
		t.Fatalf("InFlight = %d after one release, want 7", n)
	}
	if sh.r.n != 0 {
		t.Fatalf("a release with latency 0 counted as a completion")
	}
	if _, ok := sh.Acquire(); !ok {
		t.Fatal("Acquire refused with a slot free")
	}

	defer func() {
		if recover() == nil {
			t.Fatal("releasing more often than admitted did not panic")
		}
	}()
	fresh := NewShedder(ShedderConfig{})
	release, _ := fresh.Acquire()
	release(time.Millisecond, false)
	release(time.Millisecond, false)
}

func TestShedderAppLimited(t *testing.T) {
	sh := NewShedder(ShedderConfig{MinLimit: 1, InitialLimit: 64})
	st := newSimStore(1000, time.Millisecond)
	phase(t, sh, st, 20, 1000, 1)
	if l := sh.Limit(); l != 64 {
		t.Fatalf("limit moved to %d under a load using under half of it, want it held at 64", l)
	}
}

func TestShedderConfig(t *testing.T) {
	sh := NewShedder(ShedderConfig{})
	if sh.cfg.MinLimit != 8 || sh.cfg.MaxLimit != 4096 || sh.Limit() != 8 || sh.cfg.Tolerance != 2 || sh.cfg.Window != 100 {
		t.Fatalf("defaults: %+v, limit %d", sh.cfg, sh.Limit())
	}
	bad := []ShedderConfig{
		{MinLimit: -1},
		{MinLimit: 10, MaxLimit: 5},
		{MinLimit: 10, MaxLimit: 20, InitialLimit: 30},
		{MinLimit: 10, InitialLimit: 5},
		{Tolerance: 1},
		{Tolerance: 3},
		{Tolerance: -2},
		{Window: -1},
	}
	for _, cfg := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewShedder(%+v) did not panic", cfg)
				}
			}()
			NewShedder(cfg)
		}()
	}
}

func TestShedderConcurrent(t *testing.T) {
	// Many goroutines acquiring and releasing at once, under -race: the
	// in-flight count never passes the largest limit and ends at zero.
	cfg := ShedderConfig{MinLimit: 2, MaxLimit: 64}
	sh := NewShedder(cfg)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 2000 {
				release, ok := sh.Acquire()
				if !ok {
					continue
				}
				if n := sh.InFlight(); n > cfg.MaxLimit {
					t.Errorf("%d in flight, MaxLimit %d", n, cfg.MaxLimit)
				}
				// Latency grows with what is in flight, as in a store.
				release(time.Duration(sh.InFlight())*time.Millisecond, (g+i)%997 == 0)
			}
		})
	}
	wg.Wait()
	if n := sh.InFlight(); n != 0 {
		t.Fatalf("%d in flight after every goroutine finished", n)
	}
	if l := sh.Limit(); l < cfg.MinLimit || l > cfg.MaxLimit {
		t.Fatalf("limit %d outside bounds", l)
	}
}

func TestShedderNoAllocs(t *testing.T) {
	sh := NewShedder(ShedderConfig{MinLimit: 1000, MaxLimit: 1000})
	if n := testing.AllocsPerRun(1000, func() {
		release, _ := sh.Acquire()
		release(time.Millisecond, false)
	}); n != 0 {
		t.Errorf("Acquire and release: %v allocations", n)
	}
}

// BenchmarkShedder measures Acquire plus release from all Ps at once:
// "admit" with the limit out of the way (every call takes the release
// lock), "shed" with the limit full (Acquire only).
func BenchmarkShedder(b *testing.B) {
	b.Run("admit", func(b *testing.B) {
		sh := NewShedder(ShedderConfig{MinLimit: 1 << 20, MaxLimit: 1 << 20})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				release, ok := sh.Acquire()
				if ok {
					release(time.Millisecond, false)
				}
			}
		})
	})
	b.Run("shed", func(b *testing.B) {
		sh := NewShedder(ShedderConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1})
		release, _ := sh.Acquire()
		defer release(0, false)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := sh.Acquire(); ok {
					b.Error("admitted past a full limit")
				}
			}
		})
	})
}
