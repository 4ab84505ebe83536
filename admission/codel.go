package admission

import (
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultInterval is CoDel's interval: how long a queue may stand before it
// counts as overloaded. 100 ms is the value of the CoDel paper and RFC 8289,
// and the default of Facebook's server-side CoDel (folly); it is a time
// scale of "a burst versus sustained overload", not a property of one
// machine's disk.
const DefaultInterval = 100 * time.Millisecond

// CoDelConfig tunes a CoDel. Zero fields take their defaults.
type CoDelConfig struct {
	// Interval is how long the queue must stand, i.e. no batch emptied
	// it, before requests start being shed (default DefaultInterval).
	// Shorter sheds sooner at the onset of overload; longer lets longer
	// bursts through unshed.
	Interval time.Duration
	// Batch is the most requests the consumer takes at once (the engine's
	// MaxBatch). While overloaded, a request that finds a full batch
	// already queued cannot make the next batch and is refused at once by
	// Admit. 0: Admit refuses nothing.
	Batch int
}

// CoDel manages the queue of one batching consumer, such as a sale's
// owner goroutine in front of a group commit, so that under sustained
// overload the consumer stays busy while no request waits for more than
// the batch ahead of it. Requests it sheds are answered 503 overloaded.
//
// It is CoDel (Nichols and Jacobson, "Controlling Queue Delay", 2012; RFC
// 8289) in the form servers use it (Facebook's "Fail at Scale", 2015, and
// folly's Codel): a queue is good if it drains now and then, and bad if it
// stands; only a queue that has stood for a whole Interval is shed, and
// then the requests that waited too long are dropped at dequeue, so the
// consumer always takes the freshest work and never idles.
//
// Group commit sets "too long" without a threshold. A request that
// arrives while a batch commits waits for that commit and then for its
// own: up to about twice the no-queue latency, which is what batching
// costs and what buys its throughput. A request still queued when the
// next batch is taken has missed a batch: that is the standing queue. So:
//
//   - the queue stands when a batch leaves requests behind, and drains
//     when a batch empties it;
//   - once it has stood for Interval, each batch sheds the requests that
//     were already queued when the previous batch was taken, and is filled
//     from those that arrived since, oldest first;
//   - two batches in a row that empty the queue end the overload, and
//     so does one that empties it when no request then comes for an
//     Interval (Begin finds the queue stayed drained).
//
// Under overload, arrivals during one commit outnumber a batch, so every
// batch is full (goodput stays at the store's capacity) and an admitted
// request waits at most one commit in the queue plus its own commit.
// The queueing delay is measured in batches, so it scales with the store:
// a slower disk makes a slower batch, not a different rule.
//
// Compared with a concurrency limit that learns a no-queue latency: that
// needs a baseline, and a group commit's latency is noisy (one fsync
// varies by a factor of three on a virtual disk) and doubles at capacity
// by construction, so a limit compared with its minimum latency reads
// normal batching as queueing and starves the store. CoDel judges the
// queue itself.
//
// A CoDel is used by one goroutine, the consumer's; Overloaded may be
// read from any.
type CoDel struct {
	interval time.Duration
	batch    int

	standing time.Time // when the queue began to stand; zero while it drains
	prev     time.Time // when the previous batch was taken
	over     bool
	began    time.Time // when the current overload began
	ended    time.Time // when the last overload of at least an Interval ended
	calm     int       // batches in a row that drained the queue

	overloaded atomic.Bool  // over, for other goroutines
	stale      atomic.Int64 // left behind by the last batch: the next one sheds them
	refused    atomic.Int64 // by Admit since the last batch
}

// NewCoDel returns a CoDel configured by cfg. It panics on a negative
// Interval, a bug of the caller.
func NewCoDel(cfg CoDelConfig) *CoDel {
	if cfg.Interval < 0 || cfg.Batch < 0 {
		panic(fmt.Sprintf("admission: NewCoDel: negative Interval %s or Batch %d", cfg.Interval, cfg.Batch))
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	return &CoDel{interval: cfg.Interval, batch: cfg.Batch}
}

// Admit reports whether a request may join the queue, which holds queued
// requests now. While the queue is overloaded, one that finds a full batch
// already waiting could not make the next batch, and would be shed at the
// one after: it is refused now instead, before it costs a place in the
// queue and a wait. Admit is safe for concurrent use.
func (q *CoDel) Admit(queued int) bool {
	if q.batch == 0 || !q.overloaded.Load() || int64(queued)-q.stale.Load() < int64(q.batch) {
		return true
	}
	q.refused.Add(1)
	return false
}

// Begin is called when the consumer starts taking a batch, at now. It
// returns the cutoff: a request queued before it missed a batch while the
// queue is overloaded, and the consumer sheds it instead of serving it. A
// zero cutoff sheds nothing.
func (q *CoDel) Begin(now time.Time) (cutoff time.Time) {
	if q.over && q.stale.Load() == 0 && q.refused.Load() == 0 && now.Sub(q.prev) >= q.interval {
		// The previous batch left nothing behind, and for an interval
		// since no batch was needed and no request refused: the queue
		// stayed drained (the sale sold out or was paused mid-flood, so
		// later purchases were answered before it). The overload ended
		// when that batch was taken; without this, it would last until
		// two more batches drained the queue, and the next crowd, maybe
		// hours later, would be shed at once.
		q.end(q.prev)
	}
	if !q.over && !q.standing.IsZero() && (now.Sub(q.standing) >= q.interval || now.Sub(q.ended) < q.interval) {
		q.over = true
		q.began = now
		q.overloaded.Store(true)
	}
	if q.over {
		return q.prev
	}
	return time.Time{}
}

// Taken reports that the batch begun at now was taken: shed requests were
// shed by the cutoff, and left are still queued.
func (q *CoDel) Taken(now time.Time, shed, left int) {
	q.prev = now
	if q.over {
		q.stale.Store(int64(left))
	}
	refused := q.refused.Swap(0)
	switch {
	case left > 0 || refused > 0:
		// Requests were left behind, or turned away because they would
		// have been: the queue stands.
		q.calm = 0
		if q.standing.IsZero() {
			q.standing = now
		}
	case shed == 0:
		// Everything that came was served: the queue drained. One such
		// batch may be luck (a short commit, a lull in arrivals); two in
		// a row end an overload.
		q.standing = time.Time{}
		if q.calm++; q.calm >= 2 && q.over {
			q.end(now)
		}
	default:
		// Emptied by shedding what missed the previous batch: that says
		// nothing of the load, which the next batch will show.
	}
}

// end ends the overload at now.
func (q *CoDel) end(now time.Time) {
	q.over = false
	if now.Sub(q.began) >= q.interval {
		q.ended = now
	}
	q.standing = time.Time{}
	q.calm = 0
	q.overloaded.Store(false)
	q.stale.Store(0)
}
