package admission

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ShedderConfig tunes a Shedder. Zero fields take their defaults. None of
// them is a latency: what counts as slow is learned from the store.
type ShedderConfig struct {
	// MinLimit is the floor of the limit (default 8). Even while the store
	// stalls this many requests are let through, which is also how the
	// shedder keeps receiving the latencies that tell it the stall is over.
	// It must be below what the store serves without queueing (with group
	// commit, a batch): the no-queue latency can only be seen below that,
	// and a floor above it would have the shedder learn the queueing delay
	// at MinLimit as its baseline.
	MinLimit int
	// MaxLimit is the ceiling of the limit (default 4096, the engine's
	// default inbox: beyond it a hot sale answers overloaded anyway).
	MaxLimit int
	// InitialLimit is where the limit starts (default MinLimit). Starting
	// low matters: the no-queue latency can only be learned below the
	// store's capacity, and slow start doubles the limit every round until
	// latency rises, so a low start costs a few rounds, not seconds.
	InitialLimit int
	// Tolerance is how far the mean latency of a round may exceed the
	// baseline before the round counts as queueing (default 2, valid range
	// above 1 up to 2). Group commit alone makes a request wait up to one
	// commit for the batch ahead of it, i.e. up to twice the no-queue
	// latency, without any real queue; beyond that requests wait for
	// several batches. More than 2 is refused because a decrease (at most
	// halving per round) must be able to drain the queue it reacts to;
	// see Shedder.
	Tolerance float64
	// Window is how many rounds the no-queue latency (the minimum per
	// round) is remembered (default 100). It must span several
	// increase-decrease cycles, which take about 0.6·√limit rounds (38 at
	// a limit of 4096); it is also how many rounds it takes to accept that
	// the store has become slower for good.
	Window int
}

func (c *ShedderConfig) setDefaults() {
	if c.MinLimit == 0 {
		c.MinLimit = 8
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = max(4096, c.MinLimit)
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = c.MinLimit
	}
	if c.Tolerance == 0 {
		c.Tolerance = 2
	}
	if c.Window == 0 {
		c.Window = 100
	}
}

func (c *ShedderConfig) validate() error {
	switch {
	case c.MinLimit < 1:
		return fmt.Errorf("MinLimit %d is below 1", c.MinLimit)
	case c.MaxLimit < c.MinLimit:
		return fmt.Errorf("MaxLimit %d is below MinLimit %d", c.MaxLimit, c.MinLimit)
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return fmt.Errorf("InitialLimit %d is outside [%d, %d]", c.InitialLimit, c.MinLimit, c.MaxLimit)
	case !(c.Tolerance > 1 && c.Tolerance <= 2):
		return fmt.Errorf("Tolerance %v is outside (1, 2]", c.Tolerance)
	case c.Window < 1:
		return fmt.Errorf("Window %d is below 1", c.Window)
	}
	return nil
}

// Shedder is an adaptive concurrency limit for requests that wait on the
// store: it admits a request only while fewer than Limit() are in flight,
// and moves the limit with the latencies the requests report back. It is
// safe for concurrent use; Acquire is lock-free and release takes one
// short lock.
//
// The idea is TCP Vegas's and Netflix concurrency-limits' (Vegas, Gradient):
// below the store's capacity, latency stays at its no-queue value however
// many requests are in flight; above it, the excess waits in a queue and
// only adds latency. So the shedder keeps a baseline, the minimum latency
// seen over the last Window rounds (a windowed minimum filter, as BBR
// keeps min_rtt), and once per round (as many completions as the limit,
// about one latency's worth of traffic) compares the round's mean latency
// with it:
//
//   - mean above Tolerance × baseline: queueing. The limit drops to the
//     concurrency that would carry the same throughput at baseline
//     latency, in-flight × baseline / mean by Little's law, but at most
//     halves in one round, so one freak round cannot empty it. This drains
//     the queue, which is what keeps the baseline honest: latencies near
//     the true minimum keep being seen, so a standing queue is never
//     learned as the new normal.
//   - otherwise the limit grows: it doubles while in slow start (until the
//     first decrease, as TCP's slow start), then grows by √limit a round,
//     sub-linearly (additive at any given size) so that growth slows near
//     the knee, yet a collapse to MinLimit recovers in tens of rounds
//     rather than thousands. It does not grow when fewer than half of it
//     were in use (the "app-limited" rule of Gradient2): a quiet period
//     says nothing about what the store can take, and a limit inflated by
//     it would let the next spike in unchecked.
//   - a request released as dropped (it timed out, or the engine's inbox
//     was full) halves the limit at once, like TCP on a loss.
//
// After a decrease, the requests admitted under the old limit still finish
// with the old queueing delay; the round that follows waits for them
// ("drains") and judges nothing, so one overload is answered once.
type Shedder struct {
	limit     atomic.Int64 // published for Acquire; the floor of est
	inFlight  atomic.Int64
	releaseFn func(time.Duration, bool) // s.release, bound once: no allocation per Acquire

	mu        sync.Mutex
	cfg       ShedderConfig
	est       float64 // the limit, unrounded
	slowStart bool
	mins      []time.Duration // per-round minimum latency, a ring of Window rounds
	next      int             // where the next round's minimum goes
	baseline  time.Duration   // min of mins; 0 until a round ends
	r         round
}

// round gathers the completions the next decision is made from.
type round struct {
	target  int // completions that end the round
	n       int // completions so far (dropped included)
	samples int // of which with a latency
	sum     time.Duration
	min     time.Duration
	peak    int64 // most requests in flight seen at a completion
	drain   bool  // waits out requests admitted before a decrease; no decision
}

// NewShedder returns a Shedder configured by cfg. It panics if cfg is
// inconsistent (e.g. MinLimit above MaxLimit): that is a bug of the caller,
// which validates operator input before building one.
func NewShedder(cfg ShedderConfig) *Shedder {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		panic("admission: NewShedder: " + err.Error())
	}
	s := &Shedder{
		cfg:       cfg,
		est:       float64(cfg.InitialLimit),
		slowStart: true,
		mins:      make([]time.Duration, cfg.Window),
	}
	s.releaseFn = s.release
	s.limit.Store(int64(cfg.InitialLimit))
	s.r = round{target: cfg.InitialLimit}
	return s
}

// Acquire admits a request that is about to queue for the store, or
// reports ok=false if it should be shed now (answered 503 overloaded with
// Retry-After). When ok, the caller must call release exactly once when
// the request is answered, with the time it spent from Acquire to its
// answer and dropped=true if it was shed or timed out further down (the
// engine's overloaded or timeout errors). A request that ended for reasons
// that say nothing about the store, e.g. its client went away, is released
// with latency 0 and dropped=false: its slot is returned and no sample is
// recorded.
func (s *Shedder) Acquire() (release func(latency time.Duration, dropped bool), ok bool) {
	for {
		n := s.inFlight.Load()
		if n >= s.limit.Load() {
			return nil, false
		}
		// A CAS rather than Add-then-undo: an over-count, however brief,
		// would shed requests that fit.
		if s.inFlight.CompareAndSwap(n, n+1) {
			return s.releaseFn, true
		}
	}
}

// Limit returns the current concurrency limit, for metrics.
func (s *Shedder) Limit() int { return int(s.limit.Load()) }

// InFlight returns how many admitted requests have not been released, for
// metrics.
func (s *Shedder) InFlight() int { return int(s.inFlight.Load()) }

func (s *Shedder) release(latency time.Duration, dropped bool) {
	left := s.inFlight.Add(-1)
	if left < 0 {
		panic("admission: Shedder release called more often than Acquire admitted")
	}
	if latency <= 0 && !dropped {
		return
	}
	s.mu.Lock()
	s.observe(latency, dropped, left+1)
	s.mu.Unlock()
}

// observe records one completion; inFlight counts it. s.mu is held.
func (s *Shedder) observe(latency time.Duration, dropped bool, inFlight int64) {
	r := &s.r
	r.n++
	r.peak = max(r.peak, inFlight)
	if dropped {
		// The latency of a dropped request is the drop's (a timeout, or
		// nothing at all for a full queue), not the store's: no sample.
		if !r.drain {
			s.decrease(s.est/2, inFlight-1)
			return
		}
	} else {
		r.samples++
		r.sum += latency
		if r.min == 0 || latency < r.min {
			r.min = latency
		}
	}
	if r.n >= r.target {
		s.endRound(inFlight - 1)
	}
}

// endRound updates the baseline with the round's minimum and, unless the
// round was draining, moves the limit. left is how many are still in
// flight. s.mu is held.
func (s *Shedder) endRound(left int64) {
	r := s.r
	if r.samples > 0 {
		s.mins[s.next] = r.min
		s.next = (s.next + 1) % len(s.mins)
		s.baseline = 0
		for _, m := range s.mins {
			if m > 0 && (s.baseline == 0 || m < s.baseline) {
				s.baseline = m
			}
		}
	}
	if !r.drain && r.samples > 0 {
		mean := r.sum / time.Duration(r.samples)
		switch {
		case float64(mean) > s.cfg.Tolerance*float64(s.baseline):
			// Little's law holds for the concurrency actually reached,
			// not for a limit the traffic never used.
			f := max(float64(s.baseline)/float64(mean), 0.5)
			s.decrease(min(s.est, float64(r.peak))*f, left)
			return
		case 2*r.peak < int64(r.target):
			// App-limited: hold.
		case s.slowStart:
			s.set(s.est * 2)
		default:
			s.set(s.est + math.Sqrt(s.est))
		}
	}
	s.startRound(false, int64(s.Limit()))
}

// decrease lowers the limit to est and ends slow start. left requests
// admitted before the decrease are still in flight; the next round waits
// for them. s.mu is held.
func (s *Shedder) decrease(est float64, left int64) {
	s.slowStart = false
	s.set(est)
	if left > 0 {
		s.startRound(true, left)
	} else {
		s.startRound(false, int64(s.Limit()))
	}
}

// set clamps and publishes a new limit. s.mu is held.
func (s *Shedder) set(est float64) {
	s.est = min(max(est, float64(s.cfg.MinLimit)), float64(s.cfg.MaxLimit))
	s.limit.Store(int64(s.est))
}

func (s *Shedder) startRound(drain bool, target int64) {
	s.r = round{target: int(max(target, 1)), drain: drain}
}
