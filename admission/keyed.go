package admission

import (
	"hash/maphash"
	"math"
	"net/netip"
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
// period are dropped by later calls on their shard.
//
// The buckets hold no pointers, so the garbage collector never walks
// them: a spike leaves a bucket for every buyer it saw, and with one heap
// object per bucket (an entry, its key, a map slot pointing at both) every
// collection re-marked them all, which made the per-buyer limit the
// largest part of the server's GC work and of the open loop's tail
// (docs/benchmarks.md, 2026-12-04). A bucket is therefore a fixed-size
// slot in a slice, linked to its neighbours in recency order by index, and
// found by its key's 128-bit seeded hash, which is all that is kept of the
// key: two keys share a bucket only if both of two independent 64-bit
// hashes collide, which no client can aim for (the seeds are random and
// never leave the process). A million keys seen once take about 110 bytes
// each, the map and the slices' room to grow included, and 200 when each
// was seen twice (a key seen again has a rate.Limiter of its own), against
// 150 and 230 with an object per key.
type Keyed struct {
	limit    rate.Limit
	burst    int
	idle     int64 // nanoseconds; 0 means buckets never expire by age
	perShard int
	seeds    [2]maphash.Seed
	mask     uint64
	shards   []shard
	// base is when the Keyed was made; slots keep times as nanoseconds
	// since it (at), so that they follow the monotonic clock as a
	// rate.Limiter does: a step of the wall clock (NTP) changes no bucket.
	base time.Time
}

// hash is a key's identity in a Keyed; its first half also picks the shard.
type hash [2]uint64

// noSlot is the slot index that means "no slot": slots[0] is never used,
// so a map lookup that misses (0) reads as noSlot.
const noSlot = 0

// shard is one lock and the buckets it guards, kept in recency order.
type shard struct {
	mu    sync.Mutex
	m     map[hash]uint32 // a key's hash -> its slot
	slots []slot
	free  uint32 // first slot of the free list (chained by next), or noSlot
	head  uint32 // most recently used
	tail  uint32 // least recently used: the first to go
	// lims are the limiters of keys seen more than once (slot.lim), the
	// only pointers the shard holds per key; freeLims are unused indexes.
	lims     []*rate.Limiter
	freeLims []uint32
	// fresh is a new bucket and once one that answered one call, at
	// reference(); neither is changed after NewKeyed, and they give the
	// answers of the buckets of keys seen once, which have no limiter.
	fresh, once *rate.Limiter
	// Shards sit side by side in one slice; the padding keeps one shard's
	// lock off the cache line of its neighbour's, so goroutines working on
	// different shards do not slow each other down.
	_ [96]byte
}

// slot is one key's bucket.
type slot struct {
	h hash
	// first is the time of the key's first call (at), the whole state of
	// its bucket while it has no limiter (lim is 0). Most buyers of a
	// spike buy once, and their limiter was most of a new key's cost.
	first      int64
	last       int64  // the time of the last use (at)
	prev, next uint32 // recency links (next also chains the free list)
	lim        uint32 // index in shard.lims, made at the key's second call; 0 until then (lims[0] is unused)
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
	// perShard rounds down, which keeps the total at most maxKeys; slots
	// are numbered by uint32 (0 is noSlot), and MaxInt32 also fits a 32-bit
	// int.
	k := &Keyed{
		limit:    r,
		burst:    burst,
		perShard: min(maxKeys/n, math.MaxInt32),
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		mask:     uint64(n - 1),
		shards:   make([]shard, n),
		base:     time.Now(),
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
		s.m = make(map[hash]uint32)
		s.slots = make([]slot, 1) // slots[0] is never used: 0 is noSlot
		s.lims = make([]*rate.Limiter, 1)
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
// refused too (see Keyed). A call allocates nothing but a key's second,
// which makes its limiter (and, now and then, a slice's growth).
//
// The caller passes now (normally time.Now()) so that one clock reading
// serves every check of a request, and so tests can move time.
func (k *Keyed) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if k.limit == rate.Inf {
		return true, 0
	}
	h := k.hash(key)
	s := &k.shards[h[0]&k.mask]
	t := k.at(now)
	s.mu.Lock()
	// The token is taken under the shard's lock: a bucket is judged full,
	// and evicted, only under that lock, so no call can spend a token of
	// a bucket that is being forgotten as full.
	defer s.mu.Unlock()
	i := s.m[h]
	if i != noSlot {
		s.slots[i].last = t
		s.moveToFront(i)
	} else {
		k.expire(s, noSlot, t)
		if len(s.m) >= k.perShard {
			victim, wait := k.fullBucket(s, now, t)
			if victim == noSlot {
				return false, wait
			}
			s.remove(victim)
		}
		i = s.alloc()
		s.slots[i] = slot{h: h, first: t, last: t}
		s.m[h] = i
		s.pushFront(i)
		k.expire(s, i, t)
		// A new bucket's answer, read from the shard's unused one without
		// changing it: AllowN grants one token when the bucket holds one
		// and the burst allows one.
		tokens := s.fresh.TokensAt(now)
		if tokens >= 1 && k.burst >= 1 {
			return true, 0
		}
		return false, k.wait(tokens)
	}
	k.expire(s, i, t)
	lim := k.limiter(s, i)
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, k.wait(lim.TokensAt(now))
}

// at is now as a slot keeps it: nanoseconds since k.base, by the monotonic
// clock when now carries a reading of it (time.Now() does), else by the
// wall clock, as time.Time.Sub measures.
func (k *Keyed) at(now time.Time) int64 { return int64(now.Sub(k.base)) }

// hash is key's identity: its two 64-bit hashes under k's seeds.
func (k *Keyed) hash(key string) hash {
	return hash{maphash.String(k.seeds[0], key), maphash.String(k.seeds[1], key)}
}

// limiter returns slot i's bucket, making it at the key's second call: a
// new bucket that answered one call at first, which is the state the first
// call left (rate.Limiter's state after AllowN depends only on the
// bucket's settings and the calls it answered), so replaying that call
// restores it exactly. Callers hold the shard's lock.
func (k *Keyed) limiter(s *shard, i uint32) *rate.Limiter {
	e := &s.slots[i]
	if e.lim == 0 {
		lim := rate.NewLimiter(k.limit, k.burst)
		lim.AllowN(k.base.Add(time.Duration(e.first)), 1)
		if n := len(s.freeLims); n > 0 {
			e.lim = s.freeLims[n-1]
			s.freeLims = s.freeLims[:n-1]
			s.lims[e.lim] = lim
		} else {
			e.lim = uint32(len(s.lims))
			s.lims = append(s.lims, lim)
		}
	}
	return s.lims[e.lim]
}

// Empty makes key's bucket hold no token at until and refill from then
// on, as if the key had spent every token it had up to until: a
// Distributed calls it for a key the shared state blocks until then, so
// that when the block ends the node's bucket does not let the key through
// in one burst again (with N nodes, N bursts where the shared limit allows
// none). Until then the bucket answers no (the block answers first). A
// key the Keyed does not hold is left alone.
func (k *Keyed) Empty(key string, until time.Time) {
	if k.limit == rate.Inf {
		return
	}
	h := k.hash(key)
	s := &k.shards[h[0]&k.mask]
	t := k.at(until)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.m[h]
	if i == noSlot {
		return
	}
	lim := rate.NewLimiter(k.limit, k.burst)
	lim.AllowN(until, k.burst)
	k.limiter(s, i) // the slot's limiter index, made if it had none
	s.lims[s.slots[i].lim] = lim
	// Used until then: neither dropped as idle nor taken as full before
	// it has refilled after until.
	s.slots[i].last = max(s.slots[i].last, t)
	s.moveToFront(i)
}

// tokensAt is how many tokens slot i's bucket holds at now, without
// making its limiter: while it has none, its bucket is the shard's once
// bucket shifted in time (a bucket's tokens depend only on its settings
// and how long ago it answered each call), at reference + (t − first),
// where t is now as k.at gives it. Callers hold the shard's lock.
func (s *shard) tokensAt(i uint32, now time.Time, t int64) float64 {
	e := &s.slots[i]
	if e.lim != 0 {
		return s.lims[e.lim].TokensAt(now)
	}
	return s.once.TokensAt(reference().Add(time.Duration(t - e.first)))
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
	// keeps only its hash) and is short enough for the stack.
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
func (k *Keyed) expire(s *shard, keep uint32, t int64) {
	if k.idle <= 0 {
		return
	}
	for i := 0; i < expireBatch && s.tail != noSlot && s.tail != keep && t-s.slots[s.tail].last > k.idle; i++ {
		s.remove(s.tail)
	}
}

// fullBucket looks at the expireBatch least recently used buckets of s for
// one that is full at now (t is now as k.at gives it, which Allow has
// already read), to make room for a new key. If there is none it returns
// noSlot and how long until the first of them will be full. Looking at a
// few, not all, keeps a call's cost bounded under a flood; the least
// recently used are the likeliest to have refilled. Callers hold s.mu.
func (k *Keyed) fullBucket(s *shard, now time.Time, t int64) (uint32, time.Duration) {
	burst := float64(k.burst)
	wait := rate.InfDuration
	i := s.tail
	for n := 0; n < expireBatch && i != noSlot; n, i = n+1, s.slots[i].prev {
		tokens := s.tokensAt(i, now, t)
		if tokens >= burst {
			return i, 0
		}
		wait = min(wait, k.waitFor(burst, tokens))
	}
	return noSlot, wait
}

// alloc returns a free slot, from the free list or a new one.
func (s *shard) alloc() uint32 {
	if i := s.free; i != noSlot {
		s.free = s.slots[i].next
		return i
	}
	s.slots = append(s.slots, slot{})
	return uint32(len(s.slots) - 1)
}

func (s *shard) pushFront(i uint32) {
	e := &s.slots[i]
	e.prev, e.next = noSlot, s.head
	if s.head != noSlot {
		s.slots[s.head].prev = i
	} else {
		s.tail = i
	}
	s.head = i
}

func (s *shard) unlink(i uint32) {
	e := &s.slots[i]
	if e.prev != noSlot {
		s.slots[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next != noSlot {
		s.slots[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = noSlot, noSlot
}

func (s *shard) moveToFront(i uint32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

// remove forgets slot i's key and puts the slot, and its limiter's index,
// on the free lists.
func (s *shard) remove(i uint32) {
	s.unlink(i)
	e := &s.slots[i]
	delete(s.m, e.h)
	if e.lim != 0 {
		s.lims[e.lim] = nil
		s.freeLims = append(s.freeLims, e.lim)
	}
	*e = slot{next: s.free}
	s.free = i
}
