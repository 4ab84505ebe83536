package admission

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge/internal/logrepeat"
)

// SharedLimit is the cluster-wide state of a rate limit (redis.Limit):
// Spend records requests nodes admitted and names the keys now over. With
// an error, blocked still holds the keys it could answer for (some calls
// failed, not all): each stands on its own.
type SharedLimit interface {
	Spend(ctx context.Context, spent map[string]int64) (blocked map[string]time.Duration, err error)
}

// Distributed is a rate limit that holds across every node of a cluster
// without a Redis call on the request path. A request passes the local
// pre-filter (a Keyed at the full rate: a key over the limit on one node
// is over it everywhere) and the list of keys the shared state blocked;
// admitted requests are counted and sent to the shared GCRA state in one
// pipelined batch every interval, whose answer updates the block list.
//
// A key's first request at a node is not reported until its second comes
// (then both are): in a spike most buyers buy once, and a shared write
// for each of them would cost Redis about as much as their purchase. So
// a node leaves out at most one request per key it saw once in the last
// remember to 2 × remember, and only while it keeps seeing the key once.
//
// The price is a delay: a node learns that a key is blocked when it next
// reports that key, so a key spread over N nodes can exceed the limit by a
// burst at every node but one, and about N × (rate × interval + 2)
// requests more, before every node refuses it. A node empties its own
// bucket of a blocked key as of the block's end (Keyed.Empty): the bucket
// refills while the key is refused, and would otherwise let the key
// through a burst at every node each time a block ends.
// Redis trouble fails open: the local limit still holds, and a 429 storm
// over a Redis outage would help no one.
type Distributed struct {
	local  *Keyed
	shared SharedLimit
	every  time.Duration
	log    *slog.Logger
	// failures limits the lines of failed reports (one each interval
	// while Redis is down) to one a logrepeat.Every; down notes that the
	// last report failed, for the line saying it is reachable again.
	failures *logrepeat.Limiter
	down     atomic.Bool

	seed    maphash.Seed
	pending [16]pendingShard
	blocked sync.Map // key -> time.Time until which it is refused

	stop chan struct{}
	done chan struct{}
}

type pendingShard struct {
	mu sync.Mutex
	m  map[string]int64
	// The keys seen lately, by hash (pointer-free, so the GC does not
	// scan them), in two generations: cur since the last rotation, prev
	// the one before. false: seen once, that request not reported yet.
	cur, prev map[uint64]bool
}

const (
	// maxPending bounds the keys one shard counts between flushes; beyond
	// it new keys are admitted uncounted (the local filter still applies).
	maxPending = 1 << 14
	// maxSeen bounds a generation of one shard's seen keys; beyond it a
	// new key is reported from its first request, as every key once was.
	maxSeen = 1 << 15
	// remember is how long a generation of seen keys lasts.
	remember = 10 * time.Second
)

// NewDistributed starts a distributed limit flushing every interval.
func NewDistributed(local *Keyed, shared SharedLimit, every time.Duration, log *slog.Logger) *Distributed {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	d := &Distributed{local: local, shared: shared, every: every, log: log, failures: logrepeat.New(logrepeat.Every), seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range d.pending {
		p := &d.pending[i]
		p.m, p.cur, p.prev = make(map[string]int64), make(map[uint64]bool), make(map[uint64]bool)
	}
	go d.loop()
	return d
}

// Allow implements the engine's RateLimiter.
func (d *Distributed) Allow(key string, now time.Time) (bool, time.Duration) {
	if v, ok := d.blocked.Load(key); ok {
		if until := v.(time.Time); now.Before(until) {
			// The block ends when the key's debt is paid, and its bucket
			// here is empty then (Keyed.Empty): a request passes once a
			// token has come in after that, as the shared limit's GCRA
			// says too.
			next := d.local.wait(0)
			if next == rate.InfDuration {
				return false, next
			}
			return false, until.Sub(now) + next
		}
	}
	if ok, wait := d.local.Allow(key, now); !ok {
		return false, wait
	}
	h := maphash.String(d.seed, key)
	s := &d.pending[h%uint64(len(d.pending))]
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[key]
	if !ok {
		// A hash collision only makes a new key count as seen: reported.
		reported, seen := s.cur[h]
		if !seen {
			if reported, seen = s.prev[h]; seen {
				delete(s.prev, h)
				s.cur[h] = reported
			}
		}
		switch {
		case !seen && len(s.cur) < maxSeen:
			s.cur[h] = false // the first: reported with the second, if any
			return true, 0
		case seen && !reported:
			s.cur[h] = true
			n = 1 // the first request, left out until now
		}
		if len(s.m) >= maxPending {
			return true, 0
		}
	}
	s.m[key] = n + 1
	return true, 0
}

// rotate starts a new generation of seen keys, forgetting the oldest.
func (d *Distributed) rotate() {
	for i := range d.pending {
		s := &d.pending[i]
		s.mu.Lock()
		s.prev, s.cur = s.cur, make(map[uint64]bool)
		s.mu.Unlock()
	}
}

func (d *Distributed) loop() {
	defer close(d.done)
	t := time.NewTicker(d.every)
	defer t.Stop()
	r := time.NewTicker(remember)
	defer r.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.Flush()
		case <-r.C:
			d.rotate()
		}
	}
}

// Flush sends the counted requests to the shared state now and applies
// its answer; the loop calls it every interval, tests call it directly.
func (d *Distributed) Flush() {
	spent := make(map[string]int64)
	for i := range d.pending {
		s := &d.pending[i]
		s.mu.Lock()
		for k, n := range s.m {
			spent[k] += n
		}
		clear(s.m)
		s.mu.Unlock()
	}
	now := time.Now()
	d.blocked.Range(func(k, v any) bool {
		if !now.Before(v.(time.Time)) {
			d.blocked.Delete(k)
		}
		return true
	})
	if len(spent) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(d.every, time.Second))
	defer cancel()
	blocked, err := d.shared.Spend(ctx, spent)
	if err != nil {
		d.down.Store(true)
		if n, ok := d.failures.Allow(""); ok {
			d.log.Warn("shared rate limit unreachable; local limits only", "err", err, logrepeat.Suppressed(n))
		}
	} else if d.down.Swap(false) {
		d.log.Info("shared rate limit reachable again", logrepeat.Suppressed(d.failures.Done("")))
	}
	// Also after an error: the keys answered were recorded over the limit
	// (a call of another key failed), and are refused as they would be
	// alone.
	for k, wait := range blocked {
		until := now.Add(wait)
		d.blocked.Store(k, until)
		// The node's bucket refilled while the key was blocked: emptied
		// at the block's end, it does not let the key through in a burst
		// then, on every node at once.
		d.local.Empty(k, until)
	}
}

// Close stops the flushing.
func (d *Distributed) Close() {
	close(d.stop)
	<-d.done
}

// Shutdown stops the flushing and sends what was counted since the last
// flush, within ctx (a stopping node's shutdown timeout). With Redis
// stalled, a report in flight and the last one each wait out the Redis
// client's read timeout, which does not heed a context's end; when ctx
// ends first they go on in the background, and the last report is not
// sent if ctx ended before it began.
func (d *Distributed) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Close()
		if ctx.Err() == nil {
			d.Flush()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("admission: last report to the shared rate limit: %w", ctx.Err())
	}
}
