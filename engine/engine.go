// Package engine is the purchase pipeline in front of a surge.Store.
//
// Each sale has an owner goroutine with a bounded inbox. Concurrent
// purchases queue in the inbox while the owner's previous batch commits;
// the owner then takes everything queued (up to MaxBatch) and hands it to
// the store as one batch, so batches grow with load and a lone request on
// an idle server commits at once. Requests that are certain to fail (sale
// not live, or fewer units left than asked) are answered before the inbox
// from lock-free atomics, so a sold-out spike costs no lock and no I/O.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
)

// Config tunes the engine; zero fields take their defaults.
type Config struct {
	// MaxBatch bounds the purchases one store call decides (default 512).
	MaxBatch int
	// QueueSize bounds each sale's inbox (default 4096). A full inbox
	// answers surge.ErrOverloaded instead of queueing without end.
	QueueSize int
	// ExpiryInterval is how often expired holds are released (default 1s).
	ExpiryInterval time.Duration
	// StoreTimeout bounds a store call made outside a request (default 30s).
	StoreTimeout time.Duration
	// PurchaseTimeout bounds how long a queued purchase waits for its
	// batch to commit (default 10s).
	PurchaseTimeout time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logger receives operational events (default slog.Default()).
	Logger *slog.Logger
	// Shedder, when set, admits purchases to the slow path (the queue to
	// the store) and learns from their latency; a refusal answers
	// overloaded. The fast path (sold out, not live) is never shed.
	Shedder Shedder
	// BuyerRate, when set, caps how many purchases per second each buyer
	// brings to the slow path (keyed by user id); a refusal answers
	// rate_limited. Rejections on the fast path cost nothing, so they are
	// not counted against anyone.
	BuyerRate RateLimiter
	// SaleRate, when set, caps how many purchases per second each sale
	// admits to the slow path (keyed by sale id); a refusal answers
	// rate_limited with the wait.
	SaleRate RateLimiter
	// Queue, when set, makes each sale's queue manager (admission.CoDel):
	// it may refuse a purchase before it queues, and each time the sale's
	// owner takes a batch, the purchases it says waited too long are
	// answered overloaded instead of served.
	Queue func() QueueManager
	// InFlight is how many batches of one sale may be at the store at once
	// (default 1). The embedded store serialises a sale's batches anyway;
	// a shared store's call mostly waits on Redis and PostgreSQL, so
	// overlapping batches uses that time. Purchases are still decided in
	// order within a batch; concurrent purchases have no order to keep.
	InFlight int
	// SyncInterval is how often the engine of a shared store (cluster
	// mode) reloads the sales and their remaining stock that other nodes
	// change (default 500ms), besides the changes the store announces.
	SyncInterval time.Duration
}

// Shedder is an adaptive concurrency limit (admission.Shedder).
type Shedder interface {
	Acquire() (release func(latency time.Duration, dropped bool), ok bool)
}

// QueueManager manages one sale's queue (admission.CoDel). Admit is called
// by purchases; Begin and Taken only by the sale's owner goroutine.
type QueueManager interface {
	// Admit reports whether a purchase may join the queue, which holds
	// queued purchases.
	Admit(queued int) bool
	// Begin returns the cutoff of the batch taken at now: purchases
	// queued before it are shed.
	Begin(now time.Time) (cutoff time.Time)
	// Taken reports the batch: how many were shed, how many are left.
	Taken(now time.Time, shed, left int)
}

// RateLimiter is a keyed token bucket (admission.Keyed).
type RateLimiter interface {
	Allow(key string, now time.Time) (ok bool, retryAfter time.Duration)
}

func (c *Config) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.ExpiryInterval <= 0 {
		c.ExpiryInterval = time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 30 * time.Second
	}
	if c.PurchaseTimeout <= 0 {
		c.PurchaseTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 500 * time.Millisecond
	}
	if c.InFlight <= 0 {
		c.InFlight = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine runs the pipeline for every sale of a store.
type Engine struct {
	store  surge.Store
	shared surge.Shared // the store, when other nodes share it; else nil
	cfg    Config
	log    *slog.Logger

	// sales is copy-on-write: purchases read it with one atomic load;
	// creating a sale (rare) copies it under mu.
	sales atomic.Pointer[map[string]*sale]
	mu    sync.Mutex
	// order is the sales sorted as listed (creation time, id), published
	// with sales; archived holds the archived sales' final states. Both are
	// copy-on-write, so listing costs no lock and no store call.
	order    atomic.Pointer[[]*sale]
	archived atomic.Pointer[archive]

	closing atomic.Bool
	stop    chan struct{}
	owners  sync.WaitGroup
	expirer sync.WaitGroup
	// life orders starting an owner against Close, which sets stopped
	// under it before it waits for the owners: no owner is counted in
	// after that.
	life    sync.RWMutex
	stopped bool

	reqs    sync.Pool // of *request
	runners sync.Pool // of *runner, with their buffers, between owners

	batches     atomic.Int64
	purchases   atomic.Int64
	fastRejects atomic.Int64
	shed        atomic.Int64
}

type sale struct {
	surge.Sale
	remaining atomic.Int64 // a hint refreshed after every store change
	inbox     chan *request
	queue     QueueManager // nil: no queue management
	// active is set while the sale has an owner goroutine. The owner
	// starts with the first purchase queued in an empty inbox and exits
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
	// shared store's sale whose hint is too old is reported stale.
	synced atomic.Int64
}

type request struct {
	ctx      context.Context
	queued   time.Time // when it entered the inbox
	deadline time.Time // the owner drops the request after it
	p        surge.Purchase
	done     chan result // buffered: the owner never blocks on a gone caller
	timer    *time.Timer
}

type result struct {
	out surge.Outcome
	err error
}

// Open starts the pipeline for every sale the store holds.
func Open(ctx context.Context, store surge.Store, cfg Config) (*Engine, error) {
	cfg.defaults()
	e := &Engine{store: store, cfg: cfg, log: cfg.Logger, stop: make(chan struct{})}
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
	e.expirer.Add(1)
	go e.expireLoop()
	if e.shared != nil {
		e.expirer.Add(1)
		go e.syncLoop()
	}
	return e, nil
}

func (e *Engine) newSale(ctx context.Context, sl surge.Sale) (*sale, error) {
	s := &sale{Sale: sl, inbox: make(chan *request, e.cfg.QueueSize), queue: e.newQueue()}
	rem, err := e.store.Remaining(ctx, sl.ID)
	if err != nil {
		return nil, fmt.Errorf("engine: remaining of sale %s: %w", sl.ID, err)
	}
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
	// last known ones.
	Stale bool
	// Archived is set for a sale taken out of service (Engine.Archive):
	// its figures are final.
	Archived bool
}

func (e *Engine) state(s *sale) SaleState {
	rem := s.remaining.Load()
	st := SaleState{Sale: s.Sale, Remaining: rem, Status: s.Status(e.cfg.Now(), rem)}
	if e.shared != nil {
		st.Stale = time.Since(time.Unix(0, s.synced.Load())) > 3*e.cfg.SyncInterval
	}
	return st
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
	e.mu.Lock()
	defer e.mu.Unlock()
	old := *e.sales.Load()
	if _, ok := old[sl.ID]; ok {
		return SaleState{}, surge.ErrSaleExists
	}
	if err := e.store.CreateSale(ctx, sl); err != nil {
		return SaleState{}, err
	}
	s := &sale{Sale: sl, inbox: make(chan *request, e.cfg.QueueSize), queue: e.newQueue()}
	s.remaining.Store(sl.Stock)
	s.synced.Store(time.Now().UnixNano())
	m := maps.Clone(old)
	m[sl.ID] = s
	e.publish(m)
	e.log.Info("sale created", "sale", sl.ID, "stock", sl.Stock, "per_user_limit", sl.PerUserLimit)
	return e.state(s), nil
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

// Purchase reserves units for a buyer. A rejection is an Outcome with its
// code, not an error; errors are sale_not_found, invalid_request,
// overloaded, unavailable, or the context's.
func (e *Engine) Purchase(ctx context.Context, saleID string, p surge.Purchase) (surge.Outcome, error) {
	s := e.lookup(saleID)
	if s == nil {
		return surge.Outcome{}, surge.ErrSaleNotFound
	}
	if err := surge.ValidatePurchase(&s.Sale, p); err != nil {
		return surge.Outcome{}, err
	}
	// Fast path: decided from immutable sale fields and one atomic load.
	code := s.Window(e.cfg.Now())
	rem := s.remaining.Load()
	if code == "" && rem < p.Quantity {
		code = surge.CodeSoldOut
	}
	if code != "" {
		pending := false
		if p.IdempotencyKey != "" {
			switch o, st := e.store.LookupKey(saleID, p.UserID, p.IdempotencyKey); st {
			case surge.KeyDone:
				if o.Quantity != p.Quantity {
					// The key first bought another quantity: replaying
					// would answer a request the client did not send.
					e.fastRejects.Add(1)
					return surge.Outcome{Code: surge.CodeIdempotencyMismatch}, nil
				}
				return surge.Outcome{Code: surge.CodeReserved, Order: o, Replay: true}, nil
			case surge.KeyPending:
				pending = true // the owner answers once the first is durable
			case surge.KeyMaybe:
				// The store keeps this sale's older keys on disk only: the
				// key may have bought long ago, and the store must look.
				pending = code != surge.CodeNotStarted
			case surge.KeyUnknown:
				// Another node may have reserved with this key: only the
				// shared store can tell a replay from a rejection.
				pending = e.shared != nil && code != surge.CodeNotStarted
			}
		}
		if !pending {
			e.fastRejects.Add(1)
			return surge.Outcome{Code: code, Remaining: rem}, nil
		}
	}
	if e.closing.Load() {
		return surge.Outcome{}, surge.ErrUnavailable
	}
	return e.queue(ctx, s, p)
}

// queue is the slow path: admission, then the sale's inbox, then the wait
// for the batch to commit.
func (e *Engine) queue(ctx context.Context, s *sale, p surge.Purchase) (surge.Outcome, error) {
	if err := e.limit(e.cfg.BuyerRate, p.UserID, "too many purchases from this buyer"); err != nil {
		return surge.Outcome{}, err
	}
	if err := e.limit(e.cfg.SaleRate, s.ID, "the sale admits a limited number of purchases per second"); err != nil {
		return surge.Outcome{}, err
	}
	if s.queue != nil && !s.queue.Admit(len(s.inbox)) {
		e.shed.Add(1)
		return surge.Outcome{}, surge.ErrOverloaded
	}
	release := noRelease
	if e.cfg.Shedder != nil {
		rel, ok := e.cfg.Shedder.Acquire()
		if !ok {
			e.shed.Add(1)
			return surge.Outcome{}, surge.ErrOverloaded
		}
		release = rel
	}
	out, latency, err := e.enqueue(ctx, s, p)
	// Overload and timeouts teach the shedder to back off; a caller who
	// went away teaches it nothing.
	switch {
	case err == nil:
		release(latency, false)
	case ctx.Err() != nil:
		release(0, false)
	default:
		release(latency, errors.Is(err, surge.ErrOverloaded) || errors.Is(err, ErrTimeout))
	}
	return out, err
}

func noRelease(time.Duration, bool) {}

// limit applies one keyed rate limit (nil: none) to the slow path.
func (e *Engine) limit(lim RateLimiter, key, why string) error {
	if lim == nil {
		return nil
	}
	ok, wait := lim.Allow(key, time.Now())
	if ok {
		return nil
	}
	e.shed.Add(1)
	return &surge.Error{Code: surge.CodeRateLimited, Message: why + "; retry after the time in Retry-After", RetryAfter: wait}
}

func (e *Engine) enqueue(ctx context.Context, s *sale, p surge.Purchase) (surge.Outcome, time.Duration, error) {
	start := time.Now()
	// Only queued purchases pay for a deadline; the fast path above never
	// waits, so it needs none. Requests and their timers are pooled: under
	// a spike this path runs hundreds of thousands of times a second.
	r := e.reqs.Get().(*request)
	r.ctx, r.p, r.queued, r.deadline = ctx, p, start, start.Add(e.cfg.PurchaseTimeout)
	select {
	case s.inbox <- r:
	default:
		r.ctx = nil
		e.reqs.Put(r)
		return surge.Outcome{}, time.Since(start), surge.ErrOverloaded
	}
	e.wake(s)
	if r.timer == nil {
		r.timer = time.NewTimer(e.cfg.PurchaseTimeout)
	} else {
		r.timer.Reset(e.cfg.PurchaseTimeout)
	}
	select {
	case res := <-r.done:
		r.timer.Stop() // since Go 1.23 no stale tick survives Stop
		r.ctx = nil
		e.reqs.Put(r)
		return res.out, time.Since(start), res.err
	// On the two exits below the owner still holds r and will answer on
	// r.done, so r is not reused. The purchase may still commit; a retry
	// with the same Idempotency-Key finds it.
	case <-r.timer.C:
		return surge.Outcome{}, time.Since(start), ErrTimeout
	case <-ctx.Done():
		return surge.Outcome{}, time.Since(start), ctx.Err()
	}
}

// ErrTimeout answers a purchase whose batch did not commit within
// Config.PurchaseTimeout. The purchase may still commit: a retry with the
// same Idempotency-Key returns it.
var ErrTimeout = &surge.Error{Code: surge.CodeUnavailable, Message: "timed out waiting for the purchase to commit; retry with the same Idempotency-Key"}

// newQueue returns a sale's queue manager, nil without Config.Queue.
func (e *Engine) newQueue() QueueManager {
	if e.cfg.Queue == nil {
		return nil
	}
	return e.cfg.Queue()
}

// wake makes sure the sale has an owner after a purchase was queued. The
// purchase is in the inbox before active is read, and an owner clears
// active before it looks at the inbox a last time, so either that owner
// finds the purchase or wake finds active clear and starts one: no
// purchase is left in an inbox nobody reads.
func (e *Engine) wake(s *sale) {
	if s.active.Load() || !s.active.CompareAndSwap(false, true) {
		return
	}
	e.life.RLock()
	defer e.life.RUnlock()
	if e.stopped {
		// Close is done with the owners: answer what was queued too late
		// (the HTTP server drains before Close, so this is rare).
		for {
			select {
			case r := <-s.inbox:
				r.done <- result{err: surge.ErrUnavailable}
			default:
				s.active.Store(false)
				return
			}
		}
	}
	// Before Close waits for the owners: this one is counted, sees stop
	// closed if Close began, and flushes the inbox.
	e.owners.Add(1)
	go e.own(s)
}

// own is a sale's owner: it turns whatever queued up into one store call,
// with up to InFlight calls at the store at once, and exits once the inbox
// is empty and its batches are done.
func (e *Engine) own(s *sale) {
	defer e.owners.Done()
	r := e.runner(s)
	defer e.runners.Put(r)
	defer r.running.Wait()
	for {
		var first *request
		select {
		case first = <-s.inbox:
		case <-e.stop:
			// Flush what is queued, then exit.
			for {
				select {
				case first := <-s.inbox:
					r.run(first, true)
				default:
					return
				}
			}
		default:
			if first = e.idle(s, r); first == nil {
				return
			}
		}
		r.run(first, false)
	}
}

// idle is called by an owner that found the inbox empty: it returns the
// next purchase if one came in meanwhile, or nil once the owner may exit
// (active is then clear, and a later purchase starts a new owner).
func (e *Engine) idle(s *sale, r *runner) *request {
	// Batches still at the store keep their slots (the sale's, shared by
	// its owners), so a next owner stays within InFlight without waiting.
	select {
	case first := <-s.inbox:
		return first
	default:
	}
	s.active.Store(false)
	select {
	case first := <-s.inbox:
		// Queued while active was still set, so its sender started no
		// owner: this one takes it, unless a purchase queued after the
		// clear already started another owner, which then owns the sale.
		if s.active.CompareAndSwap(false, true) {
			return first
		}
		// Answer it alone before leaving: concurrent purchases have no
		// order to keep, and the store is safe for concurrent use.
		e.apply(s, []*request{first}, nil)
		return nil
	default:
		return nil
	}
}

// runner hands an owner's batches to the store. With InFlight 1 it runs
// them on the owner's goroutine and reuses its buffers. With more, for a
// store whose call mostly waits on the network (cluster mode), each batch
// runs on its own goroutine once it has a slot; the owner takes the slot
// before it gathers the batch, so while every slot is busy purchases queue
// up and the next batch takes them all.
type runner struct {
	e         *Engine
	s         *sale
	slots     chan struct{} // nil with InFlight 1
	running   sync.WaitGroup
	batch     []*request
	purchases []surge.Purchase
}

// runner returns a runner for s, reusing the buffers of an owner that went
// idle: a sale's owner starts often, and its buffers (MaxBatch requests
// and purchases) are most of what it costs.
func (e *Engine) runner(s *sale) *runner {
	r, ok := e.runners.Get().(*runner)
	if !ok {
		r = e.newRunner(s)
	}
	r.s = s
	if e.cfg.InFlight > 1 {
		s.slotsOnce.Do(func() { s.slots = make(chan struct{}, e.cfg.InFlight) })
		r.slots = s.slots
	}
	return r
}

func (e *Engine) newRunner(s *sale) *runner {
	r := &runner{e: e, s: s}
	if e.cfg.InFlight > 1 {
		r.slots = make(chan struct{}, e.cfg.InFlight)
		return r
	}
	r.batch = make([]*request, 0, e.cfg.MaxBatch)
	r.purchases = make([]surge.Purchase, 0, e.cfg.MaxBatch)
	return r
}

// run gathers a batch starting with first (alone when flushing at Close)
// and applies it.
func (r *runner) run(first *request, alone bool) {
	if r.slots == nil {
		if batch := r.gather(first, alone, r.batch[:0]); len(batch) > 0 {
			r.e.apply(r.s, batch, r.purchases)
		}
		return
	}
	r.slots <- struct{}{}
	batch := r.gather(first, alone, make([]*request, 0, r.e.cfg.MaxBatch))
	if len(batch) == 0 {
		<-r.slots
		return
	}
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		defer func() { <-r.slots }()
		r.e.apply(r.s, batch, make([]surge.Purchase, 0, len(batch)))
	}()
}

func (r *runner) gather(first *request, alone bool, batch []*request) []*request {
	if alone {
		return append(batch, first)
	}
	return r.e.take(r.s, first, batch)
}

// take fills a batch with first and whatever else is queued, up to
// MaxBatch. With a queue manager, purchases queued before its cutoff are
// answered overloaded instead: under sustained overload they missed a
// batch already, and fresher ones take their place.
func (e *Engine) take(s *sale, first *request, batch []*request) []*request {
	var now, cutoff time.Time
	if s.queue != nil {
		now = time.Now()
		cutoff = s.queue.Begin(now)
	}
	shed := 0
	for r := first; ; {
		if r.queued.Before(cutoff) {
			shed++
			r.done <- result{err: surge.ErrOverloaded}
		} else if batch = append(batch, r); len(batch) == e.cfg.MaxBatch {
			break
		}
		select {
		case r = <-s.inbox:
			continue
		default:
		}
		break
	}
	if s.queue != nil {
		e.shed.Add(int64(shed))
		s.queue.Taken(now, shed, len(s.inbox))
	}
	return batch
}

func (e *Engine) apply(s *sale, batch []*request, purchases []surge.Purchase) {
	// Callers that gave up, or whose deadline passed while queued, are
	// dropped before they cost a reservation.
	now := time.Now()
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		if now.After(r.deadline) {
			r.done <- result{err: ErrTimeout}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	purchases = purchases[:0]
	for _, r := range live {
		purchases = append(purchases, r.p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	gen := s.releases.Load()
	outs, rem, err := e.store.Reserve(ctx, s.ID, purchases, e.cfg.Now())
	e.setRemaining(ctx, s, rem, gen, err == nil)
	cancel()
	e.batches.Add(1)
	e.purchases.Add(int64(len(live)))
	if err != nil {
		e.log.Error("reserve batch failed", "sale", s.ID, "size", len(live), "err", err)
		if surge.ErrorCode(err) == "" {
			err = fmt.Errorf("%w: %w", surge.ErrUnavailable, err)
		}
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}
	for i, r := range live {
		r.done <- result{out: outs[i], err: outs[i].Err}
	}
}

// Order returns one order.
func (e *Engine) Order(ctx context.Context, id string) (surge.Order, error) {
	if !surge.ValidID(id) {
		return surge.Order{}, surge.ErrOrderNotFound
	}
	return e.store.Order(ctx, id)
}

// Cancel cancels a reserved order and returns its units to the stock.
func (e *Engine) Cancel(ctx context.Context, id string) (surge.Order, error) {
	o, err := e.store.Cancel(ctx, id, e.cfg.Now())
	if err != nil {
		return o, err
	}
	e.refresh(ctx, o.SaleID)
	return o, nil
}

// Pay marks a reserved order paid.
func (e *Engine) Pay(ctx context.Context, id string) (surge.Order, error) {
	return e.store.Pay(ctx, id, e.cfg.Now())
}

// Orders streams every order of a sale.
func (e *Engine) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if _, err := e.Sale(saleID); err != nil {
		return err
	}
	return e.store.Orders(ctx, saleID, fn)
}

// refresh reloads a sale's remaining-stock hint after units came back.
func (e *Engine) refresh(ctx context.Context, saleID string) {
	s := e.lookup(saleID)
	if s == nil {
		return
	}
	s.releases.Add(1) // before the lock: see setRemaining
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	e.reload(ctx, s)
}

// setRemaining stores the figure a batch returned (known is false if the
// batch failed). If units came back while the batch was being decided, the
// figure may predate them and would hide them from the fast path, so the
// hint is reloaded from the store instead.
func (e *Engine) setRemaining(ctx context.Context, s *sale, rem, gen int64, known bool) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	if known && s.releases.Load() == gen {
		s.remaining.Store(rem)
		return
	}
	e.reload(ctx, s)
}

// reload sets the hint from the store; the caller holds s.hintMu.
func (e *Engine) reload(ctx context.Context, s *sale) {
	rem, err := e.store.Remaining(ctx, s.ID)
	if err != nil {
		e.log.Warn("refresh remaining", "sale", s.ID, "err", err)
		return
	}
	s.remaining.Store(rem)
	s.synced.Store(time.Now().UnixNano())
}

// syncLoop follows a shared store: sales created and units returned by
// other nodes (announced, and polled every SyncInterval in case an
// announcement was lost), so this node's fast path never answers from a
// view more than about a second old.
func (e *Engine) syncLoop() {
	defer e.expirer.Done()
	t := time.NewTicker(e.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case id := <-e.shared.Changed():
			// Coalesce a burst of announcements (a wave of cancels): each
			// sale is read once however many changes queued up.
			ids := map[string]bool{id: true}
		drain:
			for len(ids) < 1024 {
				select {
				case id := <-e.shared.Changed():
					ids[id] = true
				default:
					break drain
				}
			}
			if ids[""] {
				e.sync("")
				continue
			}
			for id := range ids {
				e.sync(id)
			}
		case <-t.C:
			e.sync("")
		}
	}
}

// sync reloads one sale ("" for all), adding sales this node has not seen.
func (e *Engine) sync(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	defer cancel()
	if id == "" || e.lookup(id) == nil {
		if err := e.addSales(ctx); err != nil {
			e.log.Warn("sync sales", "err", err)
		}
	}
	for sid, s := range *e.sales.Load() {
		if id == "" || sid == id {
			e.refresh(ctx, s.ID)
		}
	}
}

// addSales starts the pipeline of every sale the store has and this
// engine does not (created on another node).
func (e *Engine) addSales(ctx context.Context) error {
	sales, err := e.store.Sales(ctx)
	if err != nil {
		return err
	}
	if err := e.dropArchived(ctx, sales); err != nil { // archive.go
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return nil
	}
	old := *e.sales.Load()
	var m map[string]*sale
	for _, sl := range sales {
		if _, ok := old[sl.ID]; ok {
			continue
		}
		s, err := e.newSale(ctx, sl)
		if err != nil {
			return err
		}
		if m == nil {
			m = maps.Clone(old)
		}
		m[sl.ID] = s
		e.log.Info("sale joined from the cluster", "sale", sl.ID, "stock", sl.Stock)
	}
	if m != nil {
		e.publish(m)
	}
	return nil
}

func (e *Engine) expireLoop() {
	defer e.expirer.Done()
	t := time.NewTicker(e.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.ExpireNow()
		}
	}
}

// ExpireNow releases every hold that has run out. It runs on a ticker;
// tests call it directly.
func (e *Engine) ExpireNow() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	defer cancel()
	expired, err := e.store.Expire(ctx, e.cfg.Now())
	if err != nil {
		e.log.Error("expire holds", "err", err)
	}
	touched := make(map[string]int)
	for _, o := range expired {
		touched[o.SaleID]++
	}
	for id, n := range touched {
		e.refresh(ctx, id)
		e.log.Info("holds expired", "sale", id, "orders", n)
	}
}

// Stats are pipeline counters.
type Stats struct {
	Batches     int64 // store calls made by owners
	Purchases   int64 // purchases in those calls
	FastRejects int64 // purchases answered without the store
	Shed        int64 // purchases refused admission to the slow path
}

// MeanBatch is purchases per store call.
func (s Stats) MeanBatch() float64 {
	if s.Batches == 0 {
		return 0
	}
	return float64(s.Purchases) / float64(s.Batches)
}

// Stats returns the pipeline counters.
func (e *Engine) Stats() Stats {
	return Stats{Batches: e.batches.Load(), Purchases: e.purchases.Load(), FastRejects: e.fastRejects.Load(), Shed: e.shed.Load()}
}

// Ready reports whether the engine takes purchases.
func (e *Engine) Ready() bool { return !e.closing.Load() }

// Close stops taking purchases, flushes every queued one, and stops the
// expiry loop. It does not close the store. Call it after the HTTP server
// has drained, so no purchase is still arriving.
func (e *Engine) Close() error {
	if e.closing.Swap(true) {
		return errors.New("engine: already closed")
	}
	close(e.stop)
	// No owner starts from here on (see wake).
	e.life.Lock()
	e.stopped = true
	e.life.Unlock()
	// The sync loop may be adding a sale: it stops before the owners are
	// counted out.
	e.expirer.Wait()
	e.owners.Wait()
	return nil
}
