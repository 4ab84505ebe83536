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
package ledger

import (
	"container/heap"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
)

// Sale is the live state of one sale. Every method but Remaining and
// LookupKey needs the caller's lock; those two are safe at any time and
// take no lock, so the pipeline's fast paths can call them.
type Sale struct {
	// sale is swapped whole by Steer (under the caller's lock); Sale reads
	// it without one.
	sale      atomic.Pointer[surge.Sale]
	remaining atomic.Int64
	// ceiling is the largest per-user limit the sale ever had: a buyer may
	// hold up to it from purchases made before the limit was lowered.
	ceiling  int64
	held     map[string]int64        // user -> reserved+paid units
	keys     sync.Map                // userKey -> keyEntry
	reserved map[string]*surge.Order // reserved orders by id
	expiry   expiryHeap
	dupKeys  int // orders restored with an already-used key

	// forget holds the keys of orders no longer live, oldest first: the
	// sweep (Forget) drops them once past the window.
	forget forgetHeap
	// forgot is set once a key was dropped or not loaded: from then on a
	// key missing from memory may still be on disk.
	forgot atomic.Bool
}

type userKey struct{ user, key string }

// keyEntry is immutable; a change replaces it in the map.
type keyEntry struct {
	order   surge.Order // the first answer: status reserved, the first request's quantity
	pending bool
}

// forgetEntry is a key of an order no longer live, dropped once the order
// was created at or before the sweep's cutoff.
type forgetEntry struct {
	created time.Time
	key     userKey
}

// New returns the state of a sale with no orders.
func New(s surge.Sale) *Sale {
	l := &Sale{
		ceiling:  s.PerUserLimit,
		held:     make(map[string]int64),
		reserved: make(map[string]*surge.Order),
	}
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

// LookupKey reports what is known of a user's idempotency key. Lock-free.
func (l *Sale) LookupKey(user, key string) (surge.Order, surge.KeyState) {
	v, ok := l.keys.Load(userKey{user, key})
	if !ok {
		// Forget sets forgot before it deletes, so a miss that raced a
		// sweep still sees it.
		if l.forgot.Load() {
			return surge.Order{}, surge.KeyMaybe
		}
		return surge.Order{}, surge.KeyUnknown
	}
	e := v.(keyEntry)
	if e.pending {
		return surge.Order{}, surge.KeyPending
	}
	return e.order, surge.KeyDone
}

// Restore replays an order loaded from storage into the state. Its key is
// kept in memory if the order is live or was created after keysAfter (the
// start of the window); older keys stay on disk only.
func (l *Sale) Restore(o surge.Order, keysAfter time.Time) {
	if o.IdempotencyKey != "" {
		if o.Status.Live() || o.CreatedAt.After(keysAfter) {
			if !l.remember(o) {
				l.dupKeys++
			}
		} else {
			l.forgot.Store(true)
		}
	}
	if !o.Status.Live() {
		return
	}
	l.remaining.Add(-o.Quantity)
	l.held[o.UserID] += o.Quantity
	if o.Status == surge.OrderReserved {
		p := &o
		l.reserved[o.ID] = p
		heap.Push(&l.expiry, p)
	}
}

// Recall puts back the key of an order the store found on disk (its key
// was dropped from memory), so Decide answers it as a replay. A dead
// order's key is dropped again by the next sweep past its window.
func (l *Sale) Recall(o surge.Order) {
	if o.IdempotencyKey != "" {
		l.remember(o)
	}
}

// remember records o's key with o's first answer; false if the key was
// already there.
func (l *Sale) remember(o surge.Order) bool {
	k := userKey{o.UserID, o.IdempotencyKey}
	first := o
	first.Status = surge.OrderReserved
	if _, loaded := l.keys.LoadOrStore(k, keyEntry{order: first}); loaded {
		return false
	}
	if !o.Status.Live() {
		heap.Push(&l.forget, forgetEntry{created: o.CreatedAt, key: k})
	}
	return true
}

// Forget drops the keys of orders no longer live that were created at or
// before cutoff (now less the idempotency window); it returns how many.
func (l *Sale) Forget(cutoff time.Time) int {
	n := 0
	for l.forget.Len() > 0 && !l.forget[0].created.After(cutoff) {
		e := heap.Pop(&l.forget).(forgetEntry)
		l.forgot.Store(true) // before the delete: see LookupKey
		l.keys.Delete(e.key)
		n++
	}
	return n
}

// Keys counts the key entries in memory (for tests and metrics; it walks
// them all).
func (l *Sale) Keys() int {
	n := 0
	l.keys.Range(func(any, any) bool { n++; return true })
	return n
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
	for u, n := range l.held {
		if n > l.ceiling {
			return fmt.Errorf("ledger: user %s holds %d units of sale %s, over the limit of %d", u, n, sale.ID, l.ceiling)
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
}

// Decide applies the rules to each purchase in order and reserves units
// tentatively. Purchases must already be validated (surge.ValidatePurchase).
// newID names each new order.
func (l *Sale) Decide(batch []surge.Purchase, now time.Time, newID func() string) ([]surge.Outcome, *Tentative) {
	outs := make([]surge.Outcome, len(batch))
	t := &Tentative{}
	sale := l.sale.Load()
	window := sale.Gate(now)
	now = now.UTC().Truncate(time.Millisecond)
	for i, p := range batch {
		if p.IdempotencyKey != "" {
			if v, ok := l.keys.Load(userKey{p.UserID, p.IdempotencyKey}); ok {
				// Pending here can only mean earlier in this same batch:
				// batches commit whole, so the replay is as durable as
				// the original.
				first := v.(keyEntry).order
				if first.Quantity != p.Quantity {
					// Another request under a used key: replaying would
					// answer a question the client did not ask.
					outs[i] = surge.Outcome{Code: surge.CodeIdempotencyMismatch}
					continue
				}
				outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: first, Replay: true}
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
		if l.held[p.UserID]+p.Quantity > sale.PerUserLimit {
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
		l.remaining.Add(-p.Quantity)
		l.held[p.UserID] += p.Quantity
		if p.IdempotencyKey != "" {
			l.keys.Store(userKey{p.UserID, p.IdempotencyKey}, keyEntry{order: o, pending: true})
		}
		t.Orders = append(t.Orders, o)
		outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: o}
	}
	return outs, t
}

// Commit keeps a tentative batch once it is durable.
func (l *Sale) Commit(t *Tentative) {
	for i := range t.Orders {
		o := t.Orders[i]
		if o.IdempotencyKey != "" {
			l.keys.Store(userKey{o.UserID, o.IdempotencyKey}, keyEntry{order: o})
		}
		p := &o
		l.reserved[o.ID] = p
		heap.Push(&l.expiry, p)
	}
}

// Rollback undoes a tentative batch whose commit failed.
func (l *Sale) Rollback(t *Tentative) {
	for _, o := range t.Orders {
		l.remaining.Add(o.Quantity)
		l.unhold(o.UserID, o.Quantity)
		if o.IdempotencyKey != "" {
			l.keys.Delete(userKey{o.UserID, o.IdempotencyKey})
		}
	}
}

func (l *Sale) unhold(user string, q int64) {
	if n := l.held[user] - q; n > 0 {
		l.held[user] = n
	} else {
		delete(l.held, user)
	}
}

// Reserved returns the reserved order with this id, if it is one.
func (l *Sale) Reserved(id string) (surge.Order, bool) {
	o, ok := l.reserved[id]
	if !ok {
		return surge.Order{}, false
	}
	return *o, true
}

// Settle records a durable transition of a reserved order to status:
// paid keeps its units held; cancelled and expired return them to the
// stock. It reports false if the order was not reserved.
func (l *Sale) Settle(id string, status surge.OrderStatus) bool {
	o, ok := l.reserved[id]
	if !ok {
		return false
	}
	delete(l.reserved, id)
	o.Status = status // also marks the heap entry stale
	if !status.Live() {
		l.remaining.Add(o.Quantity)
		l.unhold(o.UserID, o.Quantity)
		if o.IdempotencyKey != "" {
			heap.Push(&l.forget, forgetEntry{created: o.CreatedAt, key: userKey{o.UserID, o.IdempotencyKey}})
		}
	}
	return true
}

// Due returns up to max reserved orders whose hold ended at or before now,
// earliest first. They stay reserved until Settle.
func (l *Sale) Due(now time.Time, max int) []surge.Order {
	var due []surge.Order
	// Stale heap entries (settled orders) are dropped as they surface.
	for l.expiry.Len() > 0 && len(due) < max {
		top := l.expiry[0]
		if top.Status != surge.OrderReserved || l.reserved[top.ID] != top {
			heap.Pop(&l.expiry)
			continue
		}
		if top.ExpiresAt.After(now) {
			break
		}
		due = append(due, *top)
		heap.Pop(&l.expiry)
	}
	return due
}

// Requeue puts back orders taken by Due whose expiry failed to commit.
func (l *Sale) Requeue(orders []surge.Order) {
	for _, o := range orders {
		if p, ok := l.reserved[o.ID]; ok {
			heap.Push(&l.expiry, p)
		}
	}
}

type expiryHeap []*surge.Order

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].ExpiresAt.Before(h[j].ExpiresAt) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(*surge.Order)) }
func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

type forgetHeap []forgetEntry

func (h forgetHeap) Len() int           { return len(h) }
func (h forgetHeap) Less(i, j int) bool { return h[i].created.Before(h[j].created) }
func (h forgetHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *forgetHeap) Push(x any)        { *h = append(*h, x.(forgetEntry)) }
func (h *forgetHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = forgetEntry{}
	*h = old[:n-1]
	return x
}
