package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// Sold-out answers for keyed purchases without Redis (issue 14).
//
// A keyed purchase the node does not know must not be answered sold_out
// from the hint alone: the key may have reserved on another node, and its
// retry must replay that order. So, per sale that sold out under keyed
// traffic, the node keeps a copy of every order with a key the sale ever
// had (Redis keeps the same: a key answers its first order forever, even
// once the order was cancelled or expired), read from PostgreSQL by its
// position (seq), and answers from it:
//
//   - a key in the copy is a durable first answer: a replay, whatever
//     the copy's age (surge.KeyDone);
//   - a key not in it was never used (surge.KeyAbsent) only while the
//     copy proves it holds every order that can exist: it read, in one
//     snapshot, orders summing to the sale's ever count (so none is
//     missing), with sold equal to stock there (so PostgreSQL, which
//     refuses an oversell, commits no new order until units come back);
//     no units have come back since (every cancel, expiry, rebuild and
//     stock change is announced, and the announcement invalidates the
//     copy before the engine hears it); and Redis, read lately (within
//     keyCopies.fresh: every batch reads it, and the engine's poll every
//     SyncInterval), had reserved no unit the copy does not hold (taken
//     <= ever) and had none left (a guard against a lost announcement).
//
// Otherwise the purchase goes to Redis as before, and a sold-out answer
// there starts a catch-up of the copy in the background. The one window
// left is an announcement's delay: units back on one node, sold to a new
// key on another, and that key retried here, all before this node hears
// of the first (milliseconds; at most SyncInterval, whose poll reads
// Redis's taken, if the announcement is lost). A node that hears nothing
// (cut off from Redis and PostgreSQL, or stopped and continued) stops
// trusting its copy once its last read of Redis is older than fresh: it
// answered sold_out, from a copy that proved nothing any more, keys that
// had bought on another node meanwhile, for as long as the cut lasted.

const (
	// copyLayers bounds the maps a copy is read through: each catch-up
	// adds one, and past this many they are merged into one.
	copyLayers = 4
	// copyRetry spaces catch-ups that did not prove the copy complete
	// (a commit in flight, a Redis count ahead of PostgreSQL).
	copyRetry = 100 * time.Millisecond
	// copyTimeout bounds one catch-up: the first reads every keyed order
	// of the sale.
	copyTimeout = 30 * time.Second
)

// keyCopies are the node's copies, by sale. Reads are lock-free: the map
// is replaced, never changed, when a sale's copy is added or dropped.
type keyCopies struct {
	max int // keys per sale beyond which no copy is kept
	// fresh is how long after Redis was last read for a sale its copy
	// may still prove; base is what the reads' times count from (its
	// monotonic clock: a wall clock set back must not make an old read
	// look fresh).
	fresh time.Duration
	base  time.Time
	mu    sync.Mutex
	sales atomic.Pointer[map[string]*keyCopy]
}

// keyCopy is one sale's copy.
type keyCopy struct {
	view atomic.Pointer[copyView]
	// gen moves on every event that may have given the sale units back;
	// a view read before it is no proof any more.
	gen atomic.Uint64
	// taken is the largest count of units Redis reported reserved for
	// the sale (Decided.Taken, Stock.Totals).
	taken atomic.Int64
	// read is when Redis's figures were last recorded (observe), in
	// nanoseconds since keyCopies.base; 0: never.
	read    atomic.Int64
	syncing atomic.Bool
	next    atomic.Int64 // no catch-up starts before (Unix ns)
}

// copyView is an immutable state of a copy.
type copyView struct {
	layers   []map[userKey]keyEntry
	keys     int
	seq      int64  // every order up to this position is read
	units    int64  // the units of those orders, keyed or not
	ever     int64  // the sale's ever count in the snapshot
	free     int64  // stock - sold in the snapshot
	gen      uint64 // the copy's gen when the catch-up began
	complete bool   // units == ever: no order is missing
}

type userKey struct{ user, key string }

// keyEntry is an order as first answered, compactly.
type keyEntry struct {
	id               string
	qty              int64
	created, expires int64 // Unix ms
}

func newKeyCopies(max int, fresh time.Duration) *keyCopies {
	c := &keyCopies{max: max, fresh: fresh, base: time.Now()}
	c.sales.Store(&map[string]*keyCopy{})
	return c
}

func (c *keyCopies) get(sale string) *keyCopy { return (*c.sales.Load())[sale] }

// ensure returns the sale's copy, adding an empty one.
func (c *keyCopies) ensure(sale string) *keyCopy {
	if k := c.get(sale); k != nil {
		return k
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.sales.Load()
	if k := old[sale]; k != nil {
		return k
	}
	m := maps.Clone(old)
	k := &keyCopy{}
	m[sale] = k
	c.sales.Store(&m)
	return k
}

// drop forgets the copies of the sales gone says are gone.
func (c *keyCopies) drop(gone func(sale string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.sales.Load()
	var m map[string]*keyCopy
	for sale := range old {
		if gone(sale) {
			if m == nil {
				m = maps.Clone(old)
			}
			delete(m, sale)
		}
	}
	if m != nil {
		c.sales.Store(&m)
	}
}

// invalidate: units of the sale ("" any sale) may have come back.
func (c *keyCopies) invalidate(sale string) {
	if sale == "" {
		for _, k := range *c.sales.Load() {
			k.gen.Add(1)
		}
		return
	}
	if k := c.get(sale); k != nil {
		k.gen.Add(1)
	}
}

// since is the time now, as keyCopy.read counts it (never 0).
func (c *keyCopies) since() int64 { return max(int64(time.Since(c.base)), 1) }

// observe records Redis's figures for a sale: units left invalidate the
// copy, units reserved beyond it keep it from proving anything, and the
// read keeps it fresh.
func (c *keyCopies) observe(sale string, remaining, taken int64) {
	k := c.get(sale)
	if k == nil {
		return
	}
	for {
		t := k.taken.Load()
		if taken <= t || k.taken.CompareAndSwap(t, taken) {
			break
		}
	}
	if remaining > 0 {
		k.gen.Add(1)
	}
	// Last: a lookup that sees this read sees its figures too.
	k.read.Store(c.since())
}

// lookup answers a key from the sale's copy: KeyDone with its first
// answer, KeyAbsent if the copy proves it was never used, else KeyUnknown.
func (c *keyCopies) lookup(sale, user, key string) (surge.Order, surge.KeyState) {
	k := c.get(sale)
	if k == nil {
		return surge.Order{}, surge.KeyUnknown
	}
	v := k.view.Load()
	if v == nil {
		return surge.Order{}, surge.KeyUnknown
	}
	uk := userKey{user, key}
	for _, m := range v.layers {
		if e, ok := m[uk]; ok {
			return surge.Order{ID: e.id, SaleID: sale, UserID: user, Quantity: e.qty, Status: surge.OrderReserved,
				IdempotencyKey: key, CreatedAt: time.UnixMilli(e.created).UTC(), ExpiresAt: time.UnixMilli(e.expires).UTC()}, surge.KeyDone
		}
	}
	// lately first: a read it sees, it sees the figures of (observe).
	if c.lately(k) && v.proves(k) {
		return surge.Order{}, surge.KeyAbsent
	}
	return surge.Order{}, surge.KeyUnknown
}

// proves: the view holds every order the sale has and can get before
// this node hears of units coming back (see the top of the file).
func (v *copyView) proves(k *keyCopy) bool {
	return v.complete && v.free <= 0 && v.gen == k.gen.Load() && k.taken.Load() <= v.ever
}

// lately: Redis was read for the sale within fresh. A node that cannot
// read it (cut off) or did not run (stopped) may have missed units coming
// back and going to new keys elsewhere; announcements do not reach it
// either, so nothing else would tell it.
func (c *keyCopies) lately(k *keyCopy) bool {
	read := k.read.Load()
	return read != 0 && c.since()-read <= int64(c.fresh)
}

// sawDecision follows a batch Redis decided: a keyed purchase answered
// sold out starts a catch-up of the sale's copy, and Redis's figures are
// recorded.
func (s *Store) sawDecision(saleID string, b redis.Batch, res redis.Decided) {
	for i, d := range res.Decisions {
		if d.Code == surge.CodeSoldOut && b.Purchases[i].IdempotencyKey != "" {
			s.catchUp(saleID)
			break
		}
	}
	s.copies.observe(saleID, res.Remaining, res.Taken)
}

// catchUp brings the sale's copy up to date in the background, unless it
// proves already, one is running, or the last one failed just now.
func (s *Store) catchUp(saleID string) {
	k := s.copies.ensure(saleID)
	if v := k.view.Load(); v != nil && v.proves(k) {
		return
	}
	if time.Now().UnixNano() < k.next.Load() || s.closed.Load() || !k.syncing.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer k.syncing.Store(false)
		s.syncCopy(saleID, k)
	}()
}

// syncCopy reads the orders the copy lacks and publishes the new view.
func (s *Store) syncCopy(saleID string, k *keyCopy) {
	ctx, cancel := context.WithTimeout(s.bg, copyTimeout)
	defer cancel()
	gen := k.gen.Load() // before the snapshot: an event after it invalidates
	old := k.view.Load()
	v, err := s.readCopy(ctx, saleID, old)
	if err == nil && !v.complete && old != nil {
		// The tail missed an order (one committed behind a later
		// position): read them all.
		v, err = s.readCopy(ctx, saleID, nil)
	}
	if surge.HasCode(err, surge.CodeSaleNotFound) {
		s.copies.drop(func(sale string) bool { return sale == saleID })
		return
	}
	if errors.Is(err, postgres.ErrKeyTailsBusy) {
		// Other sales' catch-ups hold their share of the pool.
		k.next.Store(time.Now().Add(copyRetry).UnixNano())
		return
	}
	if err != nil {
		s.log.Warn("catch up the copy of a sale's keys", "sale", saleID, "err", err)
		k.next.Store(time.Now().Add(time.Second).UnixNano())
		return
	}
	if v.keys > s.copies.max {
		// Too big to keep: this sale's keyed purchases go to Redis.
		s.log.Warn("a sale's keys exceed the copy's bound; keyed sold-out purchases go to Redis", "sale", saleID,
			"keys", v.keys, "max", s.copies.max)
		k.view.Store(nil)
		k.next.Store(time.Now().Add(time.Minute).UnixNano())
		return
	}
	v.gen = gen
	k.view.Store(v)
	if !v.proves(k) {
		k.next.Store(time.Now().Add(copyRetry).UnixNano())
	}
}

// readCopy returns old with the orders after it (all of them without old,
// or if old missed one).
func (s *Store) readCopy(ctx context.Context, saleID string, old *copyView) (*copyView, error) {
	if old != nil && !old.complete {
		old = nil
	}
	var after int64
	if old != nil {
		after = old.seq
	}
	t, err := s.db.KeyTail(ctx, saleID, after)
	if err != nil {
		return nil, err
	}
	m := make(map[userKey]keyEntry, len(t.Keyed))
	for _, o := range t.Keyed {
		m[userKey{o.UserID, o.IdempotencyKey}] = keyEntry{id: o.ID, qty: o.Quantity,
			created: o.CreatedAt.UnixMilli(), expires: o.ExpiresAt.UnixMilli()}
	}
	v := &copyView{seq: t.Seq, units: t.Units, keys: len(m), ever: t.Ever, free: t.Stock - t.Sold}
	if old != nil {
		v.units += old.units
		v.keys += old.keys
		v.layers = slices.Clip(old.layers)
	}
	if len(m) > 0 {
		v.layers = append(v.layers, m)
	}
	if len(v.layers) > copyLayers {
		all := make(map[userKey]keyEntry, v.keys)
		for _, l := range v.layers {
			maps.Copy(all, l)
		}
		v.layers = []map[userKey]keyEntry{all}
	}
	v.complete = v.units == t.Ever
	return v, nil
}
