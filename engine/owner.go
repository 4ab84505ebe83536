package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/logrepeat"
)

// newManager returns a sale's inbox manager, nil without
// Config.InboxManager.
func (e *Engine) newManager() InboxManager {
	if e.cfg.InboxManager == nil {
		return nil
	}
	return e.cfg.InboxManager()
}

// wake makes sure the sale has an owner after a purchase was posted. The
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
		// Close is done with the owners: answer what was posted too late
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

// own is a sale's owner: it turns whatever waits in the inbox into one
// store call, with up to InFlight calls at the store at once, and exits
// once the inbox is empty and its batches are done.
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
			// Flush the inbox, then exit.
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
		// Posted while active was still set, so its sender started no
		// owner: this one takes it, unless a purchase posted after the
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
// before it gathers the batch, so while every slot is busy purchases wait
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

// take fills a batch with first and whatever else is in the inbox, up to
// MaxBatch. With an inbox manager, purchases that arrived before its
// cutoff are answered overloaded instead: under sustained overload they missed a
// batch already, and fresher ones take their place.
func (e *Engine) take(s *sale, first *request, batch []*request) []*request {
	var now, cutoff time.Time
	if s.manager != nil {
		now = time.Now()
		cutoff = s.manager.Begin(now)
	}
	shed := 0
	for r := first; ; {
		if r.arrived.Before(cutoff) {
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
	if s.manager != nil {
		e.shed.Add(int64(shed))
		s.manager.Taken(now, shed, len(s.inbox))
	}
	return batch
}

func (e *Engine) apply(s *sale, batch []*request, purchases []surge.Purchase) {
	// Callers that gave up, or whose deadline passed in the inbox, are
	// dropped before they cost a reservation.
	now := time.Now()
	// One reading of the sale's clock decides the batch: a purchase that
	// came before the start by it (early, no rate-limit token paid) can
	// sell if the batch is decided after it, and pays its tokens here.
	decided := e.cfg.Now()
	started := s.snap().Window(decided) != surge.CodeNotStarted
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		if now.After(r.deadline) {
			r.done <- result{err: timedOut(r.p)}
			continue
		}
		if r.early && started {
			if err := e.rateLimits(s, r.p, now); err != nil {
				r.done <- result{err: err}
				continue
			}
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
	ctx, endSpans := e.traceBatch(ctx, s, live)
	gen := s.releases.Load()
	began := time.Now()
	// The store reads the clock once it holds the sale: decided was read
	// before the batch waited for it (behind a cancel's, an expiry's or an
	// operator's commit). A batch not started by decided carries purchases
	// the fast path refused (not started), sent only to tell a replay, and
	// the early ones paid no rate-limit token: decided at decided, none of
	// them sells unpaid should the store come to it after the start.
	clock := e.cfg.Now
	if !started {
		clock = surge.At(decided)
	}
	outs, rem, err := e.store.Reserve(ctx, s.ID, purchases, clock)
	e.cfg.Metrics.ObserveBatch(len(live), time.Since(began))
	endSpans(err)
	e.setRemaining(ctx, s, rem, gen, err == nil)
	cancel()
	if err != nil {
		// A store that refused the batch because a dependency is known
		// down (its breaker open, logged when it opened), or because the
		// sale's state is being rebuilt (the store logs the rebuild), is
		// the outage or recovery going on, not news: WARN, with its own limit so that it never
		// hides the first ERROR of a real failure.
		level, key := slog.LevelError, s.ID
		if errors.Is(err, surge.ErrDependencyDown) {
			level, key = slog.LevelWarn, s.ID+"\x00down"
		}
		s.failing.Store(true)
		if n, ok := e.failures.Allow(key); ok {
			e.log.Log(context.Background(), level, "reserve batch failed", "sale", s.ID, "size", len(live), "err", err, logrepeat.Suppressed(n))
		}
		if surge.ErrorCode(err) == "" {
			err = fmt.Errorf("%w: %w", surge.ErrUnavailable, err)
		}
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}
	// A batch that succeeds ends the sale's failure, so that the next
	// outage's first failure is written at once, not left out as a repeat
	// of the last. At most one recovery a period, itself limited: a
	// dependency failing one batch in many would otherwise write a
	// failure and a recovery each time. One atomic load on the fast path.
	if s.failing.Load() && s.failing.CompareAndSwap(true, false) {
		if _, ok := e.failures.Allow(s.ID + "\x00ok"); ok {
			n := e.failures.Done(s.ID) + e.failures.Done(s.ID+"\x00down")
			e.log.Info("reserve batches succeed again", "sale", s.ID, logrepeat.Suppressed(n))
		}
	}
	// A batch is decided as a whole, but one purchase in it may still fail
	// alone: a shared store answers a replay whose first purchase, made on
	// another node, is not yet known to be durable with 503 for that
	// purchase only (Outcome.Err), and the rest of the batch stands.
	for i, r := range live {
		r.done <- result{out: outs[i], err: outs[i].Err}
	}
}
