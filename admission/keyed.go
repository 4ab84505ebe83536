package admission

import (
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a set of token buckets, one per key (a buyer id, a client
// address, a sale id), with a bound on how many it holds. It is safe for
// concurrent use.
//
// Its promise: a key never gets more than burst + r × elapsed tokens over
// any period, whatever other keys do. Memory is bounded by maxKeys: the
// keys are spread over shards by a randomly seeded hash (so a client
// cannot aim its keys at one shard), and a new key in a full shard takes
// the place of a bucket that is full (its tokens back at burst), which is
// the same as no bucket, so forgetting it forgives nothing. When none of
// the shard's few least recently used buckets is full (if the least
// recently used one is not, every key of the shard was used within the
// time a bucket takes to refill), the new key is refused, with the wait
// until one of them will be full. So a flood of distinct keys beyond
// maxKeys makes newcomers wait, for at most a refill time after the flood
// stops, and never frees a key of its debt; the per-address limit bounds
// how fast one client can mint keys. Buckets idle for longer than the idle
// period are dropped by later calls on their shard. A key seen once costs
// about 130 bytes with a short key, one seen again about 210 (measured
// with 12-byte keys, the map included), so a million keys is 130 to
// 210 MB.
type Keyed struct {
	limit    rate.Limit
	burst    int
	idle     int64 // nanoseconds; 0 means buckets never expire by age
	perShard int
	seed     maphash.Seed
	mask     uint64
	shards   []shard
}

// shard is one lock and the buckets it guards, kept in recency order.
type shard struct {
	mu   sync.Mutex
	m    map[string]*entry
	head *entry // most recently used
	tail *entry // least recently used: the first to go
	// fresh is a new bucket and once one that answered one call, at
	// reference(); neither is changed after NewKeyed, and they give the
	// answers of the buckets of keys seen once, which have no limiter.
	fresh, once *rate.Limiter
	// Shards sit side by side in one slice; the padding keeps one shard's
	// lock off the cache line of its neighbour's, so goroutines working on
	// different shards do not slow each other down.
	_ [96]byte
}

type entry struct {
	key string
	// lim is made at the key's second call (see limiter). Most buyers of
	// a spike buy once, and their limiter was most of a new key's cost.
	lim *rate.Limiter
	// first is the time of the key's first call, the whole state of its
	// bucket while lim is nil.
	first      time.Time
	last       int64 // UnixNano of the last use
	prev, next *entry
}

// Bounds of the shard layout. More shards than this buy little (64
// mutexes already make contention rare at any realistic core count); a
// shard smaller than minPerShard would make its local LRU a poor
// approximation of a global one.
const (
	maxShards   = 64
	minPerShard = 16
	// expireBatch bounds how many idle buckets one call drops, so that a
	// call after a long quiet period does not pay for all of them.
	expireBatch = 8
)

// NewKeyed returns a limiter allowing each key r events per second with
// bursts of up to burst, holding at most maxKeys buckets (maxKeys below 1
// is taken as 1). A bucket unused for idle is dropped; idle is raised to
// the time an empty bucket takes to refill (burst/r), since dropping a
// bucket earlier would hand its key tokens it has not earned, and idle <= 0
// means exactly that refill time. With r == rate.Inf every call is
// allowed and nothing is stored.
func NewKeyed(r rate.Limit, burst int, maxKeys int, idle time.Duration) *Keyed {
	maxKeys = max(maxKeys, 1)
	n := 1
	for n < maxShards && n*2*minPerShard <= maxKeys {
		n *= 2
	}
	k := &Keyed{
		limit:    r,
		burst:    burst,
		perShard: maxKeys / n, // rounding down keeps the total at most maxKeys
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		shards:   make([]shard, n),
	}
	switch {
	case r <= 0 || burst <= 0:
		// Buckets never fill up again, so none may be forgotten for age.
		k.idle = 0
	default:
		refill := float64(burst) / float64(r) * float64(time.Second)
		if refill >= float64(math.MaxInt64) {
			k.idle = 0
		} else {
			k.idle = max(int64(idle), int64(math.Ceil(refill)))
		}
	}
	for i := range k.shards {
		s := &k.shards[i]
		s.m = make(map[string]*entry)
		s.fresh = rate.NewLimiter(r, burst)
		s.once = rate.NewLimiter(r, burst)
		s.once.AllowN(reference(), 1)
	}
	return k
}

// Allow takes a token from key's bucket at time now. If none is left it
// reports false and how long until one will be, which the caller rounds up
// to whole seconds for Retry-After. retryAfter is rate.InfDuration when the
// bucket can never grant a token (burst 0, or rate 0 once the burst is
// spent). A new key that finds its shard full of buckets in debt is
// refused too (see Keyed). An existing key costs no allocation, a new one
// two (its entry and its key); a key's second call makes its limiter.
//
// The caller passes now (normally time.Now()) so that one clock reading
// serves every check of a request, and so tests can move time.
func (k *Keyed) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if k.limit == rate.Inf {
		return true, 0
	}
	s := &k.shards[maphash.String(k.seed, key)&k.mask]
	t := now.UnixNano()
	s.mu.Lock()
	// The token is taken under the shard's lock: a bucket is judged full,
	// and evicted, only under that lock, so no call can spend a token of
	// a bucket that is being forgotten as full.
	defer s.mu.Unlock()
	e := s.m[key]
	if e != nil {
		e.last = t
		s.moveToFront(e)
	} else {
		k.expire(s, nil, t)
		if len(s.m) >= k.perShard {
			victim, wait := k.fullBucket(s, now)
			if victim == nil {
				return false, wait
			}
			s.remove(victim)
		}
		// key is copied before it is stored, which keeps it from escaping
		// (see AllowAddr) and a key cut from a larger buffer from pinning
		// that buffer.
		e = &entry{key: strings.Clone(key), first: now, last: t}
		s.m[e.key] = e
		s.pushFront(e)
		k.expire(s, e, t)
		// A new bucket's answer, read from the shard's unused one without
		// changing it: AllowN grants one token when the bucket holds one
		// and the burst allows one.
		tokens := s.fresh.TokensAt(now)
		if tokens >= 1 && k.burst >= 1 {
			return true, 0
		}
		return false, k.wait(tokens)
	}
	k.expire(s, e, t)
	lim := k.limiter(e)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, k.wait(lim.TokensAt(now))
}

// limiter returns e's bucket, making it at the key's second call: a new
// bucket that answered one call at e.first, which is the state the first
// call left (rate.Limiter's state after AllowN depends only on the
// bucket's settings and the calls it answered), so replaying that call
// restores it exactly. Callers hold the shard's lock.
func (k *Keyed) limiter(e *entry) *rate.Limiter {
	if e.lim == nil {
		e.lim = rate.NewLimiter(k.limit, k.burst)
		e.lim.AllowN(e.first, 1)
		e.first = time.Time{} // drops its Location
	}
	return e.lim
}

// tokensAt is how many tokens e's bucket holds at now, without making
// its limiter: while it has none, its bucket is the shard's once bucket
// shifted in time (a bucket's tokens depend only on its settings and how
// long ago it answered each call), at reference + (now − e.first).
// Callers hold the shard's lock.
func (s *shard) tokensAt(e *entry, now time.Time) float64 {
	if e.lim != nil {
		return e.lim.TokensAt(now)
	}
	return s.once.TokensAt(reference().Add(now.Sub(e.first)))
}

// reference is when the shards' once buckets answered their call. Any
// instant would do; it has no monotonic reading, so times shifted from
// it compare by their wall clock, exactly by the duration added.
func reference() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }

// AllowAddr is Allow keyed by a client address, without formatting it: an
// IPv4 address is its own key, an IPv6 address is keyed by its /64, the
// block one subscriber is usually assigned, so that a client cannot escape
// its limit by rotating through addresses of its own block. IPv4-mapped
// IPv6 addresses count as IPv4, and an invalid address (a peer whose
// address could not be read) shares one bucket with every other. Use one
// Keyed for addresses only: keys from Allow and AllowAddr share one space.
func (k *Keyed) AllowAddr(a netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	var buf [9]byte
	// The conversion does not allocate: the string does not escape (Allow
	// copies it before storing it) and is short enough for the stack.
	return k.Allow(string(addrKey(a, &buf)), now)
}

// addrKey writes a's key into buf: a family tag, then the address or, for
// IPv6, its first 64 bits.
func addrKey(a netip.Addr, buf *[9]byte) []byte {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		buf[0] = 4
		copy(buf[1:], b[:])
		return buf[:5]
	case a.Is6():
		b := a.As16()
		buf[0] = 6
		copy(buf[1:], b[:8])
		return buf[:9]
	}
	return buf[:0]
}

// wait is how long a bucket holding tokens takes to hold one.
func (k *Keyed) wait(tokens float64) time.Duration { return k.waitFor(1, tokens) }

// waitFor is how long a bucket holding tokens takes to hold want.
func (k *Keyed) waitFor(want, tokens float64) time.Duration {
	if k.burst < 1 || k.limit <= 0 {
		return rate.InfDuration
	}
	need := (want - tokens) / float64(k.limit) * float64(time.Second)
	if need >= float64(math.MaxInt64) {
		return rate.InfDuration
	}
	// Rounded up so that a retry at now+wait finds the tokens there.
	return time.Duration(math.Ceil(max(need, 0)))
}

// Len returns how many buckets are held, for metrics.
func (k *Keyed) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// expire drops a few buckets idle for longer than k.idle, which are full
// (k.idle is never shorter than the refill time). The list is in recency
// order, so they are at the tail; keep, the bucket in use, is never among
// them. Callers hold s.mu.
func (k *Keyed) expire(s *shard, keep *entry, t int64) {
	if k.idle <= 0 {
		return
	}
	for i := 0; i < expireBatch && s.tail != nil && s.tail != keep && t-s.tail.last > k.idle; i++ {
		s.remove(s.tail)
	}
}

// fullBucket looks at the expireBatch least recently used buckets of s for
// one that is full at now, to make room for a new key. If there is none it
// returns nil and how long until the first of them will be full. Looking
// at a few, not all, keeps a call's cost bounded under a flood; the least
// recently used are the likeliest to have refilled. Callers hold s.mu.
func (k *Keyed) fullBucket(s *shard, now time.Time) (*entry, time.Duration) {
	burst := float64(k.burst)
	wait := rate.InfDuration
	e := s.tail
	for i := 0; i < expireBatch && e != nil; i, e = i+1, e.prev {
		tokens := s.tokensAt(e, now)
		if tokens >= burst {
			return e, 0
		}
		wait = min(wait, k.waitFor(burst, tokens))
	}
	return nil, wait
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	} else {
		s.tail = e
	}
	s.head = e
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) moveToFront(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.m, e.key)
}
