// Package ledger keeps the live state of a sale in memory and applies the
// purchase rules to it: remaining stock, units held per user, idempotency
// keys, and reserved orders waiting for payment or expiry. It does no I/O;
// a store pairs it with durable storage and serialises access to it.
//
// Changes are two-phase so memory never runs ahead of disk in a way a crash
// could expose: a reservation batch is applied tentatively (Decide), then
// either kept (Commit) once durable or undone (Rollback). Units come back
// (Release) only after the release itself is durable, so a crash can never
// restore an order whose units were already sold again.
//
// Idempotency keys stay in memory while their order is live (bounded by the
// stock) and for a recent window after (Forget drops the older ones), so a
// buy-and-cancel loop cannot grow memory without end. Once a key may have
// been dropped, LookupKey answers KeyMaybe for keys it does not hold, and
// the store must look on disk (and Recall what it finds) before deciding.
//
// The state holds no pointers the garbage collector would have to trace
// (layout.go): orders are fixed-size records in pages, their strings live
// in a byte arena of large chunks, and the indexes are open-addressed
// tables of record numbers; none is copied whole to grow. A sale of a
// million orders is then a handful of large objects that every GC cycle
// skips, instead of millions it re-marks.
package ledger

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
)

// Sale is the live state of one sale. Every method but Remaining and
// LookupKey needs the caller's lock; those two are safe at any time, so
// the pipeline's fast paths can call them: Remaining is one atomic load,
// and LookupKey takes a read lock that the writers hold only while they
// change memory (never across I/O).
type Sale struct {
	// sale is swapped whole by Steer (under the caller's lock); Sale reads
	// it without one.
	sale      atomic.Pointer[surge.Sale]
	remaining atomic.Int64
	// ceiling is the largest per-user limit the sale ever had: a buyer may
	// hold up to it from purchases made before the limit was lowered.
	ceiling int64
	dupKeys int // orders restored with an already-used key
	dormant bool
	// forgot is set once a key was dropped or not loaded: from then on a
	// key missing from memory may still be on disk.
	forgot atomic.Bool

	// mu orders LookupKey's reads against the writers, who also hold the
	// caller's lock, so writers never wait on each other here.
	mu sync.RWMutex
	st state
}

// state is the pointer-free part of a sale's state (layout.go).
type state struct {
	seed  maphash.Seed
	arena arena
	// compactAt is the garbage below which the arena is never squeezed:
	// a small arena is cheap to keep, and copying it often is not.
	compactAt   int
	compactions int           // for tests
	recs        pages[rec]    // orders: reserved, or keeping a key
	free        []uint32      // unused entries of recs
	users       pages[holder] // buyers holding units
	ufree       []uint32      // unused entries of users
	byKey       table         // (user, key) -> recs index, orders with a key
	byID        table         // id -> recs index, committed reserved orders
	byUsr       table         // user -> users index
	// expiry orders the committed reserved orders by ExpiresAt; each
	// record knows its place, so a settled order leaves at once.
	expiry []uint32
	// forget holds the keyed orders no longer live, oldest first: the
	// sweep (Forget) drops them once past the window.
	forget []uint32
	// warmed keeps what warm read, so that the compiler keeps the reads.
	warmed uint64
}

// New returns the state of a sale with no orders.
func New(s surge.Sale) *Sale {
	l := &Sale{ceiling: s.PerUserLimit}
	l.st.seed = maphash.MakeSeed()
	l.st.compactAt = 1 << 16
	l.sale.Store(&s)
	l.remaining.Store(s.Stock)
	return l
}

// Sale returns the sale this state belongs to, as last steered. Lock-free;
// the sale it points to is never changed.
func (l *Sale) Sale() *surge.Sale { return l.sale.Load() }

// Ceiling is the largest per-user limit the sale ever had.
func (l *Sale) Ceiling() int64 { return l.ceiling }

// RaiseCeiling records that the sale once had a per-user limit of n (a
// store restoring a sale whose limit was lowered since).
func (l *Sale) RaiseCeiling(n int64) { l.ceiling = max(l.ceiling, n) }

// Sold is the units reserved and paid orders hold.
func (l *Sale) Sold() int64 { return l.sale.Load().Stock - l.remaining.Load() }

// Steer makes next, a changed copy of the sale (surge.Sale.Apply), the
// sale: a stock change moves the remaining stock by as much, and later
// decisions follow the new pause, window, limit and hold. The caller holds
// the lock and has made the change durable; next.Stock is at least Sold.
func (l *Sale) Steer(next surge.Sale) {
	prev := l.sale.Load()
	l.RaiseCeiling(next.PerUserLimit)
	l.sale.Store(&next)
	l.remaining.Add(next.Stock - prev.Stock)
}

// Remaining is the unreserved stock. Lock-free.
func (l *Sale) Remaining() int64 { return l.remaining.Load() }

// Grow makes room for n more orders in the indexes, so that a store
// restoring a large sale does not rehash them as it goes.
func (l *Sale) Grow(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.grow(n)
}

// Dormant makes this the state of a sale whose orders stay on disk (an
// ended sale without reserved orders, which decides nothing but replays):
// sold units are taken off the stock, and any key may be on disk, so
// LookupKey answers KeyMaybe and the store looks (Recall).
func (l *Sale) Dormant(sold int64) {
	l.remaining.Add(-sold)
	l.forgot.Store(true)
	l.dormant = true
}

// IsDormant reports whether the sale's orders were left on disk (Dormant)
// and not adopted since.
func (l *Sale) IsDormant() bool { return l.dormant }

// Adopt takes the state of full, the same sale restored with all its
// orders, in place of a dormant one: readers of LookupKey see the dormant
// state or the full one, never a sale half restored.
func (l *Sale) Adopt(full *Sale) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st = full.st
	l.ceiling = max(l.ceiling, full.ceiling)
	l.dupKeys = full.dupKeys
	l.remaining.Store(full.remaining.Load())
	l.forgot.Store(full.forgot.Load())
	l.dormant = false
}

// LookupKey reports what is known of a user's idempotency key. Safe
// without the caller's lock.
func (l *Sale) LookupKey(user, key string) (surge.Order, surge.KeyState) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.st.findKey(user, key)
	if !ok {
		// Forget sets forgot before it deletes, so a miss that raced a
		// sweep still sees it.
		if l.forgot.Load() {
			return surge.Order{}, surge.KeyMaybe
		}
		return surge.Order{}, surge.KeyUnknown
	}
	r := l.st.recs.at(i)
	if r.pending {
		return surge.Order{}, surge.KeyPending
	}
	// The caller's user and key equal the stored ones: only the id is
	// copied out of the arena.
	return l.first(r, string(l.st.arena.id(r)), user, key), surge.KeyDone
}

// first is the first answer of the order r: status reserved, whatever
// became of it.
func (l *Sale) first(r *rec, id, user, key string) surge.Order {
	return surge.Order{
		ID:             id,
		SaleID:         l.sale.Load().ID,
		UserID:         user,
		Quantity:       r.qty,
		Status:         surge.OrderReserved,
		IdempotencyKey: key,
		CreatedAt:      fromNano(r.created),
		ExpiresAt:      fromNano(r.expires),
	}
}

// order is the order of record r as it stands now.
func (l *Sale) order(r *rec) surge.Order {
	a := &l.st.arena
	o := l.first(r, string(a.id(r)), string(a.user(r)), string(a.key(r)))
	o.Status = r.status.order()
	return o
}

// Restore replays an order loaded from storage into the state. Its key is
// kept in memory if the order is live or was created after keysAfter (the
// start of the window); older keys stay on disk only.
func (l *Sale) Restore(o surge.Order, keysAfter time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restore(o, keysAfter)
}

// RestoreAll restores orders, in their order, as Restore does one. A
// restore's lookups land on slots of the indexes at random, each a cache
// miss (and, in a virtual machine, a costly TLB miss) that one lookup at a
// time waits out alone: first reading the slots every order of the batch
// will start at, in a loop whose reads do not depend on each other, lets
// the processor have many of those misses in flight at once, so the
// lookups after find their slots in the cache (docs/benchmarks.md,
// 2026-12-04, evening). A few hundred orders' slots fit in the caches.
func (l *Sale) RestoreAll(orders []surge.Order, keysAfter time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.warmed = l.st.warm(orders)
	for i := range orders {
		l.restore(orders[i], keysAfter)
	}
}

func (l *Sale) restore(o surge.Order, keysAfter time.Time) {
	live := o.Status.Live()
	keep := o.IdempotencyKey != "" && (live || o.CreatedAt.After(keysAfter))
	if o.IdempotencyKey != "" && !keep {
		l.forgot.Store(true)
	}
	var user uint32
	if live {
		l.remaining.Add(-o.Quantity)
		user = l.st.hold(o.UserID, o.Quantity)
	}
	if !keep && o.Status != surge.OrderReserved {
		return
	}
	i := l.st.add(o, false, user)
	if keep && !l.st.indexKey(i) {
		l.dupKeys++
	}
	switch {
	case o.Status == surge.OrderReserved:
		l.st.indexID(i)
		l.st.pushExpiry(i)
	case !live:
		l.st.pushForget(i)
	}
}

// Recall puts back the key of an order the store found on disk (its key
// was dropped from memory), so Decide answers it as a replay. A dead
// order's key is dropped again by the next sweep past its window.
func (l *Sale) Recall(o surge.Order) {
	if o.IdempotencyKey == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.st.findKey(o.UserID, o.IdempotencyKey); ok {
		return
	}
	var user uint32
	if o.Status.Live() {
		user, _ = l.st.findUser(o.UserID)
	}
	i := l.st.add(o, false, user)
	l.st.indexKey(i)
	if !o.Status.Live() {
		l.st.pushForget(i)
	}
}

// Forget drops the keys of orders no longer live that were created at or
// before cutoff (now less the idempotency window); it returns how many.
func (l *Sale) Forget(cutoff time.Time) int {
	c := toNano(cutoff)
	s := &l.st
	if len(s.forget) == 0 || s.recs.at(s.forget[0]).created > c {
		return 0 // nothing to drop: readers are not held up
	}
	l.forgot.Store(true) // before the delete: see LookupKey
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for len(s.forget) > 0 && s.recs.at(s.forget[0]).created <= c {
		i := s.popForget()
		s.unindexKey(i)
		s.release(i)
		n++
	}
	s.compact()
	return n
}

// Keys counts the idempotency keys in memory (for tests and metrics).
func (l *Sale) Keys() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.st.byKey.n
}

// Verify checks the guarantees on restored state: no oversell, every user
// within the limit, one order per idempotency key. A failure means the
// storage holds state Surge could never have written.
func (l *Sale) Verify() error {
	sale := l.sale.Load()
	if rem := l.remaining.Load(); rem < 0 {
		return fmt.Errorf("ledger: sale %s is oversold by %d units", sale.ID, -rem)
	}
	// Against the ceiling: a limit lowered later binds new purchases only.
	for i := range l.st.users.len() {
		h := l.st.users.at(i)
		if h.held > l.ceiling {
			return fmt.Errorf("ledger: user %s holds %d units of sale %s, over the limit of %d",
				l.st.arena.get(h.off, uint32(h.n)), h.held, sale.ID, l.ceiling)
		}
	}
	if l.dupKeys > 0 {
		return fmt.Errorf("ledger: sale %s has %d orders reusing an idempotency key", sale.ID, l.dupKeys)
	}
	return nil
}

// Tentative is a batch applied to memory but not yet durable.
type Tentative struct {
	Orders []surge.Order // new orders to persist, in batch order
	recs   []uint32      // their records, in the same order
}

// Decide applies the rules to each purchase in order and reserves units
// tentatively. Purchases must already be checked (surge.CheckPurchase); one
// above the sale's per-user limit is refused here, limit_reached.
// newID names each new order.
func (l *Sale) Decide(batch []surge.Purchase, now time.Time, newID func() string) ([]surge.Outcome, *Tentative) {
	outs := make([]surge.Outcome, len(batch))
	t := &Tentative{}
	sale := l.sale.Load()
	window := sale.Gate(now)
	now = now.UTC().Truncate(time.Millisecond)
	s := &l.st
	locked := false
	defer func() {
		if locked {
			l.mu.Unlock()
		}
	}()
	for i, p := range batch {
		if p.IdempotencyKey != "" {
			if j, ok := s.findKey(p.UserID, p.IdempotencyKey); ok {
				// Pending here can only mean earlier in this same batch:
				// batches commit whole, so the replay is as durable as
				// the original.
				r := s.recs.at(j)
				if r.qty != p.Quantity {
					// Another request under a used key: replaying would
					// answer a question the client did not ask.
					outs[i] = surge.Outcome{Code: surge.CodeIdempotencyMismatch}
					continue
				}
				outs[i] = surge.Outcome{Code: surge.CodeReserved, Replay: true,
					Order: l.first(r, string(s.arena.id(r)), p.UserID, p.IdempotencyKey)}
				continue
			}
		}
		if window != "" {
			outs[i] = surge.Outcome{Code: window}
			continue
		}
		rem := l.remaining.Load()
		if rem < p.Quantity {
			outs[i] = surge.Outcome{Code: surge.CodeSoldOut, Remaining: rem}
			continue
		}
		if s.held(p.UserID)+p.Quantity > sale.PerUserLimit {
			outs[i] = surge.Outcome{Code: surge.CodeLimitReached}
			continue
		}
		o := surge.Order{
			ID:             newID(),
			SaleID:         sale.ID,
			UserID:         p.UserID,
			Quantity:       p.Quantity,
			Status:         surge.OrderReserved,
			IdempotencyKey: p.IdempotencyKey,
			CreatedAt:      now,
			ExpiresAt:      now.Add(sale.Hold()),
		}
		if !locked {
			// Rejections change nothing: a sold-out batch never holds
			// readers up.
			l.mu.Lock()
			locked = true
		}
		l.remaining.Add(-p.Quantity)
		j := s.add(o, true, s.hold(p.UserID, p.Quantity))
		if p.IdempotencyKey != "" {
			s.indexKey(j)
		}
		t.Orders = append(t.Orders, o)
		t.recs = append(t.recs, j)
		outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: o}
	}
	return outs, t
}

// Commit keeps a tentative batch once it is durable.
func (l *Sale) Commit(t *Tentative) {
	if len(t.recs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range t.recs {
		l.st.recs.at(i).pending = false
		l.st.indexID(i)
		l.st.pushExpiry(i)
	}
}

// Rollback undoes a tentative batch whose commit failed.
func (l *Sale) Rollback(t *Tentative) {
	if len(t.recs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.st
	for k, i := range t.recs {
		o := &t.Orders[k]
		l.remaining.Add(o.Quantity)
		s.unhold(o.UserID, o.Quantity)
		if o.IdempotencyKey != "" {
			s.unindexKey(i)
		}
		s.release(i)
	}
	s.compact()
}

// Reserved returns the reserved order with this id, if it is one.
func (l *Sale) Reserved(id string) (surge.Order, bool) {
	i, ok := l.st.findID(id)
	if !ok {
		return surge.Order{}, false
	}
	return l.order(l.st.recs.at(i)), true
}

// Settle records a durable transition of a reserved order to status:
// paid keeps its units held; cancelled and expired return them to the
// stock. It reports false if the order was not reserved.
func (l *Sale) Settle(id string, status surge.OrderStatus) bool {
	s := &l.st
	i, ok := s.findID(id)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s.unindexID(i)
	s.removeExpiry(i)
	r := s.recs.at(i)
	r.status = statusOf(status)
	keyed := r.keyLen > 0
	if !status.Live() {
		l.remaining.Add(r.qty)
		s.unholdAt(r.user, r.qty)
		if keyed {
			s.pushForget(i)
		}
	}
	if !keyed {
		// Nothing but its key or its hold kept the record: the units a
		// paid order holds are counted per user.
		s.release(i)
	}
	s.compact()
	return true
}

// Due returns up to max reserved orders whose hold ended at or before now,
// earliest first. They stay reserved until Settle, and Due hands each out
// once (Requeue puts back those whose expiry failed).
func (l *Sale) Due(now time.Time, max int) []surge.Order {
	var due []surge.Order
	s := &l.st
	n := toNano(now)
	for len(s.expiry) > 0 && len(due) < max && s.recs.at(s.expiry[0]).expires <= n {
		i := s.expiry[0]
		due = append(due, l.order(s.recs.at(i)))
		l.mu.Lock()
		s.removeExpiry(i)
		l.mu.Unlock()
	}
	return due
}

// Requeue puts back orders taken by Due whose expiry failed to commit.
func (l *Sale) Requeue(orders []surge.Order) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range orders {
		if i, ok := l.st.findID(o.ID); ok && l.st.recs.at(i).heap < 0 {
			l.st.pushExpiry(i)
		}
	}
}
