// Package engine is the purchase pipeline in front of a surge.Store.
//
// Each sale has an owner goroutine with a bounded inbox. Concurrent
// purchases wait in the inbox while the owner's previous batch commits;
// the owner then takes everything waiting (up to MaxBatch) and hands it to
// the store as one batch, so batches grow with load and a lone request on
// an idle server commits at once. Requests that are certain to fail (sale
// not live, or fewer units left than asked) are answered before the inbox
// from lock-free atomics, so a sold-out spike costs no lock and no I/O.
//
// Everything that decides whether a purchase gets in (the waiting-room
// gate, validation, the fast path, the per-buyer and per-sale limits, the
// inbox manager, the inbox) is a stage of Engine.Purchase; the stages and
// their order are written down once, at the top of pipeline.go.
//
// Files: config.go (Config and the small interfaces the engine is given),
// pipeline.go (the stages), owner.go (owner goroutines, batching, the
// store call), hints.go (remaining-stock hints), follow.go (following a
// store other nodes share), archive.go (archiving and listing), stats.go.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
	"github.com/surgehq/surge/internal/logrepeat"
	"github.com/surgehq/surge/metrics"
)

// Engine runs the pipeline for every sale of a store.
type Engine struct {
	store  surge.Store
	shared surge.Shared // the store, when other nodes share it; else nil
	cfg    Config
	log    *slog.Logger
	// failures limits the lines of failed batches: one per sale a
	// logrepeat.Every while the store is down, not one per batch.
	failures *logrepeat.Limiter
	tracer   trace.Tracer // nil: no spans (Config.Tracing)

	// sales is copy-on-write: purchases read it with one atomic load;
	// creating a sale (rare) copies it under mu.
	sales atomic.Pointer[map[string]*sale]
	mu    ctxlock.Mutex
	// order is the sales sorted as listed (creation time, id), published
	// with sales; archived holds the archived sales' final states. Both are
	// copy-on-write, so listing costs no lock and no store call.
	order    atomic.Pointer[[]*sale]
	archived atomic.Pointer[archive]

	closing  atomic.Bool
	stop     chan struct{}
	owners   sync.WaitGroup
	follower sync.WaitGroup // the sync loop of a shared store
	// refreshFailing is set while the last refresh of a sale's figures
	// from a shared store failed, whichever sale (SaleState.Stale).
	refreshFailing atomic.Bool
	// life orders starting an owner against Close, which sets stopped
	// under it before it waits for the owners: no owner is counted in
	// after that.
	life    sync.RWMutex
	stopped bool

	reqs    sync.Pool // of *request
	runners sync.Pool // of *runner, with their buffers, between owners

	fastRejects atomic.Int64
	shed        atomic.Int64
	// steers counts changes of sales' snapshots (steer.go).
	steers atomic.Int64

	// cancelling holds a slot per cancel in the store, paying one per
	// payment (a webhook's delivery, the operator's settlement): separate
	// budgets, so that buyers calling cancel by the thousand cannot refuse
	// the provider's deliveries, which come back late, after the holds
	// they pay for ended. changes counts both for Close (changeOrder).
	cancelling, paying chan struct{}
	changes            sync.WaitGroup
	// buyerCancels counts each buyer's cancels holding a slot of
	// cancelling: one buyer may hold maxChangesPerBuyer of them, so that
	// its cancels by the thousand cannot refuse every other buyer's.
	buyerCancelsMu sync.Mutex
	buyerCancels   map[string]int
}

type sale struct {
	// ID and CreatedAt never change; everything else of the sale may
	// (steer.go), so it is read from cur: one atomic pointer load gives
	// the fast path a consistent snapshot, swapped whole on a change,
	// with no lock and no allocation.
	ID        string
	CreatedAt time.Time
	cur       atomic.Pointer[surge.Sale]
	snapMu    ctxlock.Mutex // orders the writers of cur (steer.go)
	remaining atomic.Int64  // a hint refreshed after every store change
	// figures is even while cur and remaining are of one moment, odd
	// while a change of the stock publishes both (steer.go: setSnap);
	// state reads the two under it.
	figures atomic.Uint64
	inbox   chan *request
	manager InboxManager  // nil: the inbox is not managed
	meter   *metrics.Sale // the sale's series; nil without Config.Metrics
	// active is set while the sale has an owner goroutine. The owner
	// starts with the first purchase put in an empty inbox and exits
	// when the inbox is empty again, so an idle sale holds no goroutine.
	active atomic.Bool
	// slots bounds the sale's batches at the store (InFlight > 1); made
	// by its first owner and shared by the next ones.
	slots     chan struct{}
	slotsOnce sync.Once

	// hintMu orders writes to remaining. releases counts store changes
	// that gave units back (cancel, expiry), so that an owner never
	// overwrites a fresher figure with the one its batch computed before.
	hintMu   sync.Mutex
	releases atomic.Int64
	// synced is when the hint was last read from the store (Unix ns); a
	// shared store's sale whose hint is too old while refreshes fail is
	// reported stale (state).
	synced atomic.Int64
	// unrefreshed is set while the sale's last refresh from the store
	// failed: its figures are the last known ones.
	unrefreshed atomic.Bool
	// failing is set by a failed batch and cleared by the next one that
	// succeeds, which ends the failure's repeat limit (Engine.failures).
	failing atomic.Bool
}

// Open starts the pipeline for every sale the store holds.
func Open(ctx context.Context, store surge.Store, cfg Config) (*Engine, error) {
	cfg.defaults()
	if c, ok := store.(surge.Clocked); ok {
		cfg.Now = c.Clock(cfg.Now) // cluster mode: PostgreSQL's clock
	}
	e := &Engine{store: store, cfg: cfg, log: cfg.Logger, failures: logrepeat.New(logrepeat.Every), stop: make(chan struct{}),
		cancelling: make(chan struct{}, maxChanges), paying: make(chan struct{}, maxChanges), buyerCancels: map[string]int{}}
	if cfg.Tracing != nil {
		e.tracer = cfg.Tracing.Tracer(tracerName)
	}
	e.shared, _ = store.(surge.Shared)
	e.reqs.New = func() any { return &request{done: make(chan result, 1)} }
	sales, err := store.Sales(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: load sales: %w", err)
	}
	m := make(map[string]*sale, len(sales))
	for _, sl := range sales {
		s, err := e.newSale(ctx, sl)
		if err != nil {
			return nil, err
		}
		m[sl.ID] = s
	}
	e.publish(m)
	if err := e.loadArchived(ctx); err != nil {
		return nil, err
	}
	if r, ok := store.(surge.Releaser); ok {
		r.OnRelease(e.released)
		// The hints above were read before this registration: a release
		// in between (the store's first expiry pass after downtime) went
		// unheard, so read them once more.
		for id := range m {
			e.refresh(ctx, id)
		}
	}
	if e.shared != nil {
		e.follower.Add(1)
		go e.syncLoop()
	}
	return e, nil
}

// pipeline makes the pipeline of sale sl, without its remaining stock.
func (e *Engine) pipeline(sl surge.Sale) *sale {
	s := &sale{ID: sl.ID, CreatedAt: sl.CreatedAt, inbox: make(chan *request, e.cfg.InboxSize), manager: e.newManager(), meter: e.cfg.Metrics.Sale(sl.ID)}
	s.cur.Store(&sl)
	return s
}

// snap is the sale as last changed; never modified in place.
func (s *sale) snap() *surge.Sale { return s.cur.Load() }

func (e *Engine) newSale(ctx context.Context, sl surge.Sale) (*sale, error) {
	rem, err := e.store.Remaining(ctx, sl.ID)
	if err != nil {
		return nil, fmt.Errorf("engine: remaining of sale %s: %w", sl.ID, err)
	}
	// Only now: the pipeline makes the sale's series, which a sale that
	// fails here (archived since the listing) would leave on /metrics.
	s := e.pipeline(sl)
	s.remaining.Store(rem)
	s.synced.Store(time.Now().UnixNano())
	return s, nil
}

func (e *Engine) lookup(id string) *sale {
	return (*e.sales.Load())[id]
}

// SaleState is a sale with its live figures.
type SaleState struct {
	surge.Sale
	Remaining int64
	Status    surge.SaleStatus
	// Stale is set in cluster mode when the figures could not be
	// refreshed lately (Redis and PostgreSQL unreachable): they are the
	// last known ones. It is the engine's, not the domain's: only an engine
	// following a shared store (follow.go) holds figures that can go stale,
	// and the API shows it in every mode so that clients need no mode to
	// read a sale (false in embedded mode).
	Stale bool
	// Archived is set for a sale taken out of service (Engine.Archive):
	// its figures are final.
	Archived bool
}

func (e *Engine) state(s *sale) SaleState {
	var (
		rem int64
		sl  *surge.Sale
	)
	for {
		v := s.figures.Load()
		if v&1 == 0 {
			rem, sl = s.remaining.Load(), s.snap()
			if s.figures.Load() == v {
				break
			}
		}
		runtime.Gosched() // a change of the stock is two atomic stores away
	}
	st := SaleState{Sale: *sl, Remaining: rem, Status: sl.Status(e.cfg.Now(), rem)}
	if e.shared != nil {
		// Stale while the figures cannot be refreshed (docs/api.md): the
		// sale's own refresh failed, or refreshes are failing and its
		// figures are older than 3 intervals (its turn in the round has
		// not come yet). Age alone is no sign: a round over many sales
		// against a slow store, or a loaded node, takes longer than 3
		// intervals with every read answered.
		st.Stale = s.unrefreshed.Load() ||
			e.refreshFailing.Load() && time.Since(time.Unix(0, s.synced.Load())) > 3*e.cfg.SyncInterval
	}
	return st
}

// lockSales takes e.mu for a sale's creation or archive, and returns the
// context to call the store with and the unlock. Both are answered within
// PurchaseTimeout, as a PATCH is (steer.go): the wait for a creation or
// archive in progress and the store's wait for its disk give up; the
// embedded store only before it writes, so a timeout there changes
// nothing, and a write under way goes on after the answer (saleChange).
func (e *Engine) lockSales(ctx context.Context) (context.Context, func(), error) {
	sctx, cancel := context.WithTimeout(ctx, e.cfg.PurchaseTimeout)
	if err := ctxlock.Lock(sctx, &e.mu); err != nil {
		cancel()
		return nil, nil, storeErr(err)
	}
	return sctx, func() {
		e.mu.Unlock()
		cancel()
	}, nil
}

// CreateSale validates and persists a new sale and starts its pipeline.
func (e *Engine) CreateSale(ctx context.Context, in surge.SaleInput) (SaleState, error) {
	sl, err := surge.NewSale(in, e.cfg.Now())
	if err != nil {
		return SaleState{}, err
	}
	if e.closing.Load() {
		return SaleState{}, surge.ErrUnavailable
	}
	sctx, unlock, err := e.lockSales(ctx)
	if err != nil {
		return SaleState{}, err
	}
	return saleChange(sctx, e, unlock, func() (SaleState, error) {
		old := *e.sales.Load()
		if _, ok := old[sl.ID]; ok {
			return SaleState{}, surge.ErrSaleExists
		}
		sl.CreatedAt = e.listedAfter(sl.CreatedAt)
		if err := e.store.CreateSale(sctx, sl); err != nil {
			return SaleState{}, storeErr(err)
		}
		s := e.pipeline(sl)
		s.remaining.Store(sl.Stock)
		s.synced.Store(time.Now().UnixNano())
		m := maps.Clone(old)
		m[sl.ID] = s
		e.publish(m)
		e.log.Info("sale created", "sale", sl.ID, "stock", sl.Stock, "per_user_limit", sl.PerUserLimit)
		return e.state(s), nil
	})
}

// listedAfter is a new sale's creation time: now, or a millisecond after
// the newest sale this engine lists (live or archived) when now is not
// after it (two creations in one millisecond, a clock stepped back). A
// listing's cursor marks the (creation, id) of its page's last sale, so a
// sale created meanwhile must sort after every sale already published or a
// buyer paging through the listing never sees it. The caller holds e.mu.
func (e *Engine) listedAfter(now time.Time) time.Time {
	newest := now.Add(-time.Millisecond)
	if order := *e.order.Load(); len(order) > 0 {
		newest = order[len(order)-1].CreatedAt
	}
	if ar := e.archived.Load().order; len(ar) > 0 && ar[len(ar)-1].CreatedAt.After(newest) {
		newest = ar[len(ar)-1].CreatedAt
	}
	if !now.After(newest) {
		return newest.Add(time.Millisecond)
	}
	return now
}

// Sale returns one sale's state, archived or not.
func (e *Engine) Sale(id string) (SaleState, error) {
	s := e.lookup(id)
	if s == nil {
		if st, ok := e.archived.Load().byID[id]; ok {
			return st, nil
		}
		return SaleState{}, surge.ErrSaleNotFound
	}
	return e.state(s), nil
}

// Sales returns every sale, oldest first.
func (e *Engine) Sales() []SaleState {
	m := *e.sales.Load()
	out := make([]SaleState, 0, len(m))
	for _, s := range m {
		out = append(out, e.state(s))
	}
	slices.SortFunc(out, func(a, b SaleState) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Order returns one order.
func (e *Engine) Order(ctx context.Context, id string) (surge.Order, error) {
	if !surge.ValidID(id) {
		return surge.Order{}, surge.ErrOrderNotFound
	}
	o, err := e.store.Order(ctx, id)
	return o, storeErr(err)
}

// Cancel cancels a reserved order and returns its units to the stock.
func (e *Engine) Cancel(ctx context.Context, id string) (surge.Order, error) {
	return e.CancelFor(ctx, "", id)
}

// CancelFor is Cancel for buyer, the API's caller: at most
// maxChangesPerBuyer of one buyer's cancels wait for the store at once,
// the next is refused rate_limited. "" is the operator, bounded by the
// cancels' whole budget only.
func (e *Engine) CancelFor(ctx context.Context, buyer, id string) (surge.Order, error) {
	return changeOrder(ctx, e, e.cancelling, buyer, func(ctx context.Context) (surge.Order, error) {
		o, err := e.store.Cancel(ctx, id, e.cfg.Now())
		if err != nil {
			return o, storeErr(err)
		}
		e.Meter(o.SaleID).Transition(metrics.ToCancelled, 1)
		e.refresh(ctx, o.SaleID)
		return o, nil
	})
}

// Pay marks a reserved order paid.
func (e *Engine) Pay(ctx context.Context, id string) (surge.Order, error) {
	return changeOrder(ctx, e, e.paying, "", func(ctx context.Context) (surge.Order, error) {
		o, err := e.store.Pay(ctx, id, e.cfg.Now())
		if err == nil {
			e.Meter(o.SaleID).Transition(metrics.ToPaid, 1)
		}
		return o, storeErr(err)
	})
}

// maxChanges bounds the cancels, and apart from them the payments,
// waiting for the store at once; the next is refused 503 overloaded at
// once.
const maxChanges = 1024

// maxChangesPerBuyer bounds one buyer's cancels among maxChanges: a
// buyer has a few orders to cancel, and a client retrying a cancel the
// store is slow to commit needs no more.
const maxChangesPerBuyer = 8

var (
	errChangesFull = &surge.Error{Code: surge.CodeOverloaded, RetryAfter: time.Second,
		Message: "too many order changes are waiting for the store; retry shortly"}
	errBuyerChangesFull = &surge.Error{Code: surge.CodeRateLimited, RetryAfter: time.Second,
		Message: fmt.Sprintf("this buyer already has %d cancels waiting for the store; wait for their answers before sending more", maxChangesPerBuyer)}
	errChangeTimeout = &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
		Message: "timed out waiting for the change to commit; it may still take effect, and a retry finds whether it did"}
	errChangeGone = &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
		Message: "the request ended before the change started; nothing changed"}
)

// changeOrder runs f, a store change of one order, for a request: it
// answers within PurchaseTimeout, as a purchase does, and at most
// maxChanges wait at once in slots (e.cancelling or e.paying), and at
// most maxChangesPerBuyer of buyer's unless buyer is "". The store
// does not stop at the caller's context (a writer must learn whether its
// commit landed, and holds the sale's lock meanwhile), so a stalled store would otherwise hold every change of a
// sale, one after another, for as long as the stall lasts. f goes on after
// a timeout and its effects (metrics, the remaining stock) are applied
// when it ends. A caller already gone starts nothing: no one would learn
// how its change ended, and a client calling on with such contexts would
// queue up to maxChanges of them on the sale's lock, ahead of its
// purchases and sale changes.
func changeOrder[T any](ctx context.Context, e *Engine, slots chan struct{}, buyer string, f func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%w: %w", errChangeGone, err)
	}
	// The buyer's share first: a buyer over it must not take a slot of
	// the whole budget, even for a moment.
	if !e.takeBuyerChange(buyer) {
		return zero, errBuyerChangesFull
	}
	select {
	case slots <- struct{}{}:
	default:
		e.giveBuyerChange(buyer)
		return zero, errChangesFull
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	// Counted in under life, which Close takes before it waits for the
	// changes: none is counted in after that.
	e.life.RLock()
	if e.stopped {
		e.life.RUnlock()
		<-slots
		e.giveBuyerChange(buyer)
		return zero, surge.ErrUnavailable
	}
	e.changes.Add(1)
	e.life.RUnlock()
	go func() {
		defer e.changes.Done()
		defer func() {
			<-slots
			e.giveBuyerChange(buyer)
		}()
		v, err := f(context.WithoutCancel(ctx))
		done <- result{v, err}
	}()
	t := time.NewTimer(e.cfg.PurchaseTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-t.C:
		return zero, errChangeTimeout
	case <-ctx.Done():
		// The caller is gone (or its deadline passed) and the change goes
		// on: unavailable, as a timeout, never a bare context error that
		// the API would answer as a bug (500 internal).
		return zero, fmt.Errorf("%w: %w", errChangeTimeout, ctx.Err())
	}
}

// takeBuyerChange takes one of buyer's maxChangesPerBuyer places, and
// reports whether there was one; "" always has one.
func (e *Engine) takeBuyerChange(buyer string) bool {
	if buyer == "" {
		return true
	}
	e.buyerCancelsMu.Lock()
	defer e.buyerCancelsMu.Unlock()
	if e.buyerCancels[buyer] >= maxChangesPerBuyer {
		return false
	}
	e.buyerCancels[buyer]++
	return true
}

// giveBuyerChange gives back a place takeBuyerChange took; a buyer with
// none left is forgotten, so the map holds only buyers with a change at
// the store.
func (e *Engine) giveBuyerChange(buyer string) {
	if buyer == "" {
		return
	}
	e.buyerCancelsMu.Lock()
	defer e.buyerCancelsMu.Unlock()
	if e.buyerCancels[buyer] <= 1 {
		delete(e.buyerCancels, buyer)
		return
	}
	e.buyerCancels[buyer]--
}

// saleChange runs f, a sale's creation, change or archive at the store
// and what follows it in the engine, in the background under the lock
// the caller took (unlock releases it when f ends), and answers within
// ctx, the request's PurchaseTimeout. The store gives up with ctx only
// before it writes: a write under way is waited for (memory must follow
// the disk), which a stalled disk holds for as long as it stalls. The
// request is then answered unavailable, its change may still land, and
// the next change waits for the lock within its own timeout.
func saleChange[T any](ctx context.Context, e *Engine, unlock func(), f func() (T, error)) (T, error) {
	var zero T
	// Counted in under life, as an order change is: Close waits for it.
	e.life.RLock()
	if e.stopped {
		e.life.RUnlock()
		unlock()
		return zero, surge.ErrUnavailable
	}
	e.changes.Add(1)
	e.life.RUnlock()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer e.changes.Done()
		defer unlock()
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // ended as ctx did
			return r.v, r.err
		default:
		}
		return zero, fmt.Errorf("%w: %w", errChangeTimeout, ctx.Err())
	}
}

// afterward is the context of what follows a sale's change in the engine
// (a store read), which may run after the request's ctx ended.
func (e *Engine) afterward(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), e.cfg.StoreTimeout)
}

// storeErr is what a store call's error answers: a domain error (a code)
// as it is, anything else (the disk, a lock held past the busy timeout, a
// closed pool) as unavailable, the storage failure the API documents as
// 503 "nothing changed, retry", as a purchase's batch does (owner.go).
func storeErr(err error) error {
	if err != nil && surge.ErrorCode(err) == "" {
		return fmt.Errorf("%w: %w", surge.ErrUnavailable, err)
	}
	return err
}

// Orders streams every order of a sale.
func (e *Engine) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if _, err := e.Sale(saleID); err != nil {
		return err
	}
	return e.store.Orders(ctx, saleID, fn)
}

// Ready reports whether the engine takes purchases.
func (e *Engine) Ready() bool { return !e.closing.Load() }

// Close stops taking purchases, flushes every one in an inbox, and stops
// following the store. It does not close the store. Call it after the HTTP server
// has drained, so no purchase is still arriving.
func (e *Engine) Close() error { return e.Shutdown(context.Background()) }

// Shutdown is Close within ctx: it returns when ctx ends even if batches
// or order changes are still at the store, and they go on in the
// background. An order change holds Close for as long as the store takes
// to learn whether its commit landed (cluster mode: up to the lease's
// term), which a stop's deadline (surge serve's --shutdown-timeout) must
// not wait out. Use it only over a store that may then be closed under
// that work, as after a crash, losing nothing it confirmed (the cluster
// store); the embedded store's Close must come after it (Close).
func (e *Engine) Shutdown(ctx context.Context) error {
	if e.closing.Swap(true) {
		return errors.New("engine: already closed")
	}
	close(e.stop)
	// No owner starts from here on (see wake).
	e.life.Lock()
	e.stopped = true
	e.life.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The sync loop may be adding a sale: it stops before the owners
		// are counted out.
		e.follower.Wait()
		if r, ok := e.store.(surge.Releaser); ok {
			r.OnRelease(nil)
		}
		e.owners.Wait()
		// Order changes a request stopped waiting for end before the
		// store is closed.
		e.changes.Wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: purchases or order changes still at the store: %w", ctx.Err())
	}
}
