package admission

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"
)

// SharedLimit is the cluster-wide state of a rate limit (redis.Limit):
// Spend records requests nodes admitted and names the keys now over.
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
// The price is a delay: a node learns that a key is blocked when it next
// reports that key, so a key spread over N nodes can exceed the limit by
// about N × (rate × interval + 1) requests before every node refuses it. Redis trouble fails open: the
// local limit still holds, and a 429 storm over a Redis outage would help
// no one.
type Distributed struct {
	local  *Keyed
	shared SharedLimit
	every  time.Duration
	log    *slog.Logger

	seed    maphash.Seed
	pending [16]pendingShard
	blocked sync.Map // key -> time.Time until which it is refused

	stop chan struct{}
	done chan struct{}
}

type pendingShard struct {
	mu sync.Mutex
	m  map[string]int64
}

// maxPending bounds the keys one shard counts between flushes; beyond it
// new keys are admitted uncounted (the local filter still applies).
const maxPending = 1 << 14

// NewDistributed starts a distributed limit flushing every interval.
func NewDistributed(local *Keyed, shared SharedLimit, every time.Duration, log *slog.Logger) *Distributed {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	d := &Distributed{local: local, shared: shared, every: every, log: log, seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range d.pending {
		d.pending[i].m = make(map[string]int64)
	}
	go d.loop()
	return d
}

// Allow implements the engine's RateLimiter.
func (d *Distributed) Allow(key string, now time.Time) (bool, time.Duration) {
	if v, ok := d.blocked.Load(key); ok {
		if until := v.(time.Time); now.Before(until) {
			return false, until.Sub(now)
		}
	}
	if ok, wait := d.local.Allow(key, now); !ok {
		return false, wait
	}
	s := &d.pending[maphash.String(d.seed, key)%uint64(len(d.pending))]
	s.mu.Lock()
	if n, ok := s.m[key]; ok || len(s.m) < maxPending {
		s.m[key] = n + 1
	}
	s.mu.Unlock()
	return true, 0
}

func (d *Distributed) loop() {
	defer close(d.done)
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.Flush()
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
		d.log.Warn("shared rate limit unreachable; local limits only", "err", err)
		return
	}
	for k, wait := range blocked {
		d.blocked.Store(k, now.Add(wait))
	}
}

// Close stops the flushing.
func (d *Distributed) Close() {
	close(d.stop)
	<-d.done
}
