package engine

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge"
)

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
