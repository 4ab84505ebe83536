package admission

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, time.November, 23, 12, 0, 0, 0, time.UTC)

func at(ms float64) time.Time { return epoch.Add(time.Duration(ms * float64(time.Millisecond))) }

func TestCoDelDrainingQueueIsNeverShed(t *testing.T) {
	q := NewCoDel(CoDelConfig{Batch: 8})
	// A batch every 2 ms for a second, each emptying the queue (nothing
	// left behind): a busy store, but no standing queue.
	for i := range 500 {
		now := at(float64(2 * i))
		if cut := q.Begin(now); !cut.IsZero() {
			t.Fatalf("batch %d: cutoff %v on a queue that drains", i, cut)
		}
		q.Taken(now, 0, 0)
		if !q.Admit(1000) {
			t.Fatalf("batch %d: Admit refused on a queue that is not overloaded", i)
		}
	}
	if q.Overloaded() {
		t.Fatal("overloaded without a standing queue")
	}
}

func TestCoDelShedsWhatMissedABatchAfterAnInterval(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: 100 * time.Millisecond})
	// Every batch leaves requests behind: the queue stands from 0 ms.
	ms := 0.0
	for ; ms < 100; ms += 5 {
		if cut := q.Begin(at(ms)); !cut.IsZero() {
			t.Fatalf("at %v ms: cutoff before the queue stood for an interval", ms)
		}
		q.Taken(at(ms), 0, 20)
	}
	// A whole interval: the requests queued before the previous batch
	// (at 95 ms) missed it and are shed.
	if cut := q.Begin(at(100)); !cut.Equal(at(95)) {
		t.Fatalf("cutoff %v, want the previous batch's time %v", cut, at(95))
	}
	if !q.Overloaded() {
		t.Fatal("not overloaded after a standing interval")
	}
	q.Taken(at(100), 20, 0) // the batch shed 20 and took the rest
	// Emptied by shedding: still overloaded, the next batch will tell.
	if cut := q.Begin(at(105)); !cut.Equal(at(100)) {
		t.Fatalf("cutoff %v after a batch emptied by shedding, want %v", cut, at(100))
	}
	// A batch that serves everything, sheds nothing and refuses nothing
	// may be luck; a second in a row says the load fell: the overload
	// ends.
	q.Taken(at(105), 0, 0)
	if !q.Overloaded() {
		t.Fatal("overload ended after one batch that drained the queue")
	}
	q.Begin(at(107))
	q.Taken(at(107), 0, 0)
	if q.Overloaded() {
		t.Fatal("still overloaded after the queue drained twice in a row")
	}
	if cut := q.Begin(at(110)); !cut.IsZero() {
		t.Fatalf("cutoff %v after the overload ended", cut)
	}
	// That overload lasted 7 ms: standing again must last a whole
	// interval again.
	q.Taken(at(110), 0, 5)
	if cut := q.Begin(at(150)); !cut.IsZero() {
		t.Fatalf("cutoff %v 40 ms into a new standing queue", cut)
	}
}

func TestCoDelResumesAfterALull(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: 100 * time.Millisecond})
	q.Begin(at(0))
	q.Taken(at(0), 0, 10)
	// Overloaded from 100 ms to 300 ms, then two batches drain the queue
	// (a lull in arrivals) and it ends.
	for ms := 100.0; ms < 300; ms += 5 {
		q.Begin(at(ms))
		q.Taken(at(ms), 0, 10)
	}
	q.Begin(at(300))
	q.Taken(at(300), 0, 0)
	q.Begin(at(302))
	q.Taken(at(302), 0, 0)
	if q.Overloaded() {
		t.Fatal("still overloaded after two drained batches")
	}
	// The flood resumes 20 ms later: an overload that lasted an interval
	// or more ended less than an interval ago, so a standing queue is shed
	// at once rather than after another interval.
	q.Begin(at(322))
	q.Taken(at(322), 0, 10)
	if cut := q.Begin(at(325)); !cut.Equal(at(322)) {
		t.Fatalf("cutoff %v right after a lull in a long overload, want %v", cut, at(322))
	}
	// Long after the last overload, standing needs an interval again.
	q.Taken(at(325), 0, 0)
	q.Begin(at(327))
	q.Taken(at(327), 0, 0)
	q.Begin(at(600))
	q.Taken(at(600), 0, 10)
	if cut := q.Begin(at(605)); !cut.IsZero() {
		t.Fatalf("cutoff %v 5 ms into a standing queue long after the last overload", cut)
	}
}

func TestCoDelAdmit(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: 10 * time.Millisecond, Batch: 4})
	if !q.Admit(1 << 20) {
		t.Fatal("refused while not overloaded")
	}
	q.Begin(at(0))
	q.Taken(at(0), 0, 9)
	q.Begin(at(10)) // overloaded from here
	q.Taken(at(10), 9, 2)
	// Two are left (stale: the next batch sheds them); room for a batch
	// of four fresh ones.
	for queued := 2; queued < 6; queued++ {
		if !q.Admit(queued) {
			t.Fatalf("refused with %d queued, 2 of them stale, batch 4", queued)
		}
	}
	if q.Admit(6) || q.Admit(7) {
		t.Fatal("admitted past a full batch of fresh requests")
	}
	// The next batch sheds the two stale ones, takes four and leaves
	// none; the two refusals say the queue would have stood.
	q.Begin(at(12))
	q.Taken(at(12), 2, 0)
	if !q.Overloaded() {
		t.Fatal("overload ended while requests were being refused")
	}
	// A drained batch, then a refusal: the count of drained batches
	// starts again.
	q.Begin(at(14))
	q.Taken(at(14), 0, 0)
	q.Admit(10)
	q.Begin(at(16))
	q.Taken(at(16), 0, 0)
	if !q.Overloaded() {
		t.Fatal("overload ended although a request was refused between the drained batches")
	}
	// Two batches in a row with nothing shed, left or refused end it.
	q.Begin(at(18))
	q.Taken(at(18), 0, 0)
	q.Begin(at(20))
	q.Taken(at(20), 0, 0)
	if q.Overloaded() || !q.Admit(100) {
		t.Fatal("still refusing after the queue drained")
	}
	// Batch 0: Admit never refuses.
	q0 := NewCoDel(CoDelConfig{Interval: time.Millisecond})
	q0.Begin(at(0))
	q0.Taken(at(0), 0, 100)
	q0.Begin(at(5))
	if !q0.Overloaded() || !q0.Admit(1<<20) {
		t.Fatal("with Batch 0, Admit refused or the queue was not overloaded")
	}
}

func TestCoDelConfig(t *testing.T) {
	if q := NewCoDel(CoDelConfig{}); q.interval != DefaultInterval || q.batch != 0 {
		t.Fatalf("defaults: interval %v, batch %d", q.interval, q.batch)
	}
	for _, cfg := range []CoDelConfig{{Interval: -1}, {Batch: -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewCoDel(%+v) did not panic", cfg)
				}
			}()
			NewCoDel(cfg)
		}()
	}
}

// TestCoDelConcurrent: Admit from many goroutines while the consumer runs
// its batches, under -race.
func TestCoDelConcurrent(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: time.Millisecond, Batch: 8})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				q.Admit((g + i) % 20)
			}
		})
	}
	now := epoch
	for i := range 20_000 {
		q.Begin(now)
		q.Taken(now, i%3, (i/7)%11)
		now = now.Add(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
}

// The rest of this file checks CoDel in front of a simulated group commit,
// the way the engine uses it: requests arrive at random (Poisson) at a
// multiple of what the store can commit; Admit decides at arrival; when
// the store is free the owner takes everything queued (up to a batch),
// shedding what arrived before CoDel's cutoff; a commit lasts c0 + c1 per
// purchase, times a random factor in [0.4, 1.6] (one fsync varies that
// much on a virtual disk). Time is simulated, so runs are exact and fast.

type groupCommit struct {
	name   string
	batch  int
	c0, c1 time.Duration
}

type simResult struct {
	goodput, shedRate float64 // per second
	p50, p99          time.Duration
	meanBatch         float64
}

// simulate offers rate requests per second for dur, to a group commit with
// q managing its queue (nil: an unbounded queue). Figures count from warm
// on.
func simulate(gc groupCommit, q *CoDel, rate float64, dur, warm time.Duration, seed uint64) simResult {
	rng := rand.New(rand.NewPCG(seed, 1))
	type request struct {
		arrival time.Duration
	}
	var inbox, batch []request
	var now, commitEnd time.Duration
	nextArrival := time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
	busy := false
	var lats []time.Duration
	shed, batches, inBatches := 0, 0, 0
	take := func(t time.Duration) {
		var cutoff time.Time
		if q != nil {
			cutoff = q.Begin(epoch.Add(t))
		}
		dropped := 0
		kept := inbox[:0]
		for _, a := range inbox {
			if epoch.Add(a.arrival).Before(cutoff) {
				dropped++
			} else {
				kept = append(kept, a)
			}
		}
		inbox = kept
		n := min(len(inbox), gc.batch)
		batch = append(batch[:0], inbox[:n]...)
		inbox = append(inbox[:0], inbox[n:]...)
		if q != nil {
			q.Taken(epoch.Add(t), dropped, len(inbox))
		}
		if t >= warm {
			shed += dropped
		}
		busy = n > 0
		if busy {
			f := 0.4 + 1.2*rng.Float64()
			commitEnd = t + time.Duration(float64(gc.c0+time.Duration(n)*gc.c1)*f)
			if t >= warm {
				batches++
				inBatches += n
			}
		}
	}
	for now < dur {
		if busy && commitEnd <= nextArrival {
			now = commitEnd
			for _, a := range batch {
				if now >= warm {
					lats = append(lats, now-a.arrival)
				}
			}
			take(now)
			continue
		}
		now = nextArrival
		nextArrival += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if q != nil && !q.Admit(len(inbox)) {
			if now >= warm {
				shed++
			}
			continue
		}
		inbox = append(inbox, request{now})
		if !busy {
			take(now)
		}
	}
	secs := (dur - warm).Seconds()
	r := simResult{goodput: float64(len(lats)) / secs, shedRate: float64(shed) / secs}
	if batches > 0 {
		r.meanBatch = float64(inBatches) / float64(batches)
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.p50, r.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	return r
}

var groupCommits = []groupCommit{
	// The batch bounds throughput and fsync sets the pace (--max-batch 8).
	{name: "store-bound", batch: 8, c0: 2500 * time.Microsecond, c1: 50 * time.Microsecond},
	// A slow disk: 10 ms a commit.
	{name: "slow disk", batch: 64, c0: 10 * time.Millisecond, c1: 20 * time.Microsecond},
	// Fast fsync, bigger batches.
	{name: "fast disk", batch: 128, c0: 700 * time.Microsecond, c1: 5 * time.Microsecond},
	// Per-purchase work dominates, as when CPU is the bottleneck.
	{name: "per-row cost", batch: 512, c0: time.Millisecond, c1: 60 * time.Microsecond},
}

// capacity measures the store's throughput with an unbounded queue under
// twice the load it can take.
func capacity(gc groupCommit) float64 {
	est := float64(gc.batch) / (gc.c0 + time.Duration(gc.batch)*gc.c1).Seconds()
	return simulate(gc, nil, 2*est, 4*time.Second, time.Second, 1).goodput
}

func TestCoDelGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates traffic")
	}
	for _, gc := range groupCommits {
		if raceEnabled && gc.batch > 64 && gc.c1 < 10*time.Microsecond {
			continue // millions of simulated requests: too slow under -race
		}
		capa := capacity(gc)
		// A full batch's commit at its slowest: what one batch can make a
		// request wait.
		commit := time.Duration(1.6 * float64(gc.c0+time.Duration(gc.batch)*gc.c1))
		for _, mult := range []float64{0.5, 0.9, 2, 5} {
			q := NewCoDel(CoDelConfig{Batch: gc.batch})
			r := simulate(gc, q, mult*capa, 5*time.Second, time.Second, 3)
			t.Logf("%-12s capacity %6.0f/s, offered %4.1fx: goodput %.2f, shed %7.0f/s, p50 %5.1f ms, p99 %5.1f ms, batch %5.1f",
				gc.name, capa, mult, r.goodput/capa, r.shedRate, ms(r.p50), ms(r.p99), r.meanBatch)
			switch {
			case mult <= 0.5:
				// Well below capacity nothing is shed.
				if r.shedRate > 0 || r.goodput < 0.97*mult*capa {
					t.Errorf("%s at %.1fx: shed %.0f/s, goodput %.2f of capacity; want nothing shed", gc.name, mult, r.shedRate, r.goodput/capa)
				}
				continue
			case mult < 1:
				// Near capacity, random arrivals and commit times make
				// brief standing queues; at most a little is shed.
				if r.goodput < 0.9*mult*capa {
					t.Errorf("%s at %.1fx: goodput %.2f of capacity, want nearly all of the offered %.1f", gc.name, mult, r.goodput/capa, mult)
				}
				continue
			case mult < 5:
				// Moderate overload: the load hovers at the edge, and each
				// time a lull ends an overload, the next standing queue
				// waits out an Interval before it is shed: p99 is about
				// an Interval, as in CoDel.
				if r.goodput < 0.9*capa || r.p99 > DefaultInterval+2*commit {
					t.Errorf("%s at %.0fx: goodput %.2f of capacity, p99 %v; want at least 0.9 and at most an Interval and two commits", gc.name, mult, r.goodput/capa, r.p99)
				}
				continue
			}
			// Overloaded: the store stays busy with full batches, and an
			// admitted request waits for about the batch ahead of it and
			// its own, nowhere near an Interval.
			if r.goodput < 0.9*capa {
				t.Errorf("%s at %.0fx: goodput %.2f of capacity, want at least 0.9", gc.name, mult, r.goodput/capa)
			}
			if r.p99 > 2*commit {
				t.Errorf("%s at %.0fx: admitted p99 %v, want at most two slow commits (%v)", gc.name, mult, r.p99, 2*commit)
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestCoDelOverloadEndsWhenTheQueueStaysDrained: an overload whose last
// batch drained the queue, after which no purchase came for a while (the
// sale sold out, or was paused, mid-flood: every later purchase is
// answered before the queue), has ended. The next crowd (units back from
// expired holds, the sale resumed) queues as on a fresh sale: it is shed
// only once its queue has stood for a whole interval, and is not refused
// at once by Admit; it used to be shed from its second batch, as if the
// flood of an hour before had never stopped.
func TestCoDelOverloadEndsWhenTheQueueStaysDrained(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: 100 * time.Millisecond, Batch: 4})
	for ms := 0.0; ms <= 300; ms += 5 {
		q.Begin(at(ms))
		q.Taken(at(ms), 0, 20)
	}
	if !q.Overloaded() {
		t.Fatal("not overloaded after 300 ms of a standing queue")
	}
	// The sale sells out: the last batches shed what missed a batch and
	// answer the rest; nothing is left, and nothing more comes.
	q.Begin(at(305))
	q.Taken(at(305), 20, 0)
	// An hour later a new crowd arrives: more than a batch at once.
	later := 305 + float64(time.Hour/time.Millisecond)
	if cut := q.Begin(at(later)); !cut.IsZero() {
		t.Fatalf("an hour after the queue drained: cutoff %v, want none", cut)
	}
	q.Taken(at(later), 0, 8)
	if q.Overloaded() {
		t.Fatal("overloaded an hour after the queue drained, at the new crowd's first batch")
	}
	if !q.Admit(20) {
		t.Fatal("Admit refused 5 ms into a new crowd's queue")
	}
	for ms := 5.0; ms < 100; ms += 5 {
		if cut := q.Begin(at(later + ms)); !cut.IsZero() {
			t.Fatalf("cutoff %v %v ms into the new crowd's standing queue, want none before an interval", cut, ms)
		}
		q.Taken(at(later+ms), 0, 8)
	}
	// The new queue stood for a whole interval: a new overload.
	if cut := q.Begin(at(later + 100)); !cut.Equal(at(later + 95)) {
		t.Fatalf("cutoff %v after the new queue stood for an interval, want %v", cut, at(later+95))
	}
}

// TestCoDelStallIsNoLull: a batch drains the queue, then the store takes
// longer than an interval to commit it while more than a batch arrives
// (Admit refuses some): the queue did not stay drained, and the overload
// goes on.
func TestCoDelStallIsNoLull(t *testing.T) {
	q := NewCoDel(CoDelConfig{Interval: 100 * time.Millisecond, Batch: 4})
	for ms := 0.0; ms <= 300; ms += 5 {
		q.Begin(at(ms))
		q.Taken(at(ms), 0, 20)
	}
	q.Begin(at(305))
	q.Taken(at(305), 20, 0)
	for queued := range 6 {
		q.Admit(queued)
	}
	if cut := q.Begin(at(500)); !cut.Equal(at(305)) {
		t.Fatalf("after a stalled commit with requests refused meanwhile: cutoff %v, want %v", cut, at(305))
	}
	if !q.Overloaded() {
		t.Fatal("the overload ended during a stalled commit that requests were refused in")
	}
}
