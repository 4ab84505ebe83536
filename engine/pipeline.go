package engine

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge"
)

// The purchase pipeline: the stages a purchase passes, in this order. The
// first that refuses answers, so a purchase that several would refuse
// gets the earliest one's answer (TestStageOrder pins the order).
//
// In front of the engine, http does what needs no sale: the per-address
// rate limit (429) comes first of all, before the body is read, because
// it must be the cheapest refusal (it guards the decoding itself); then
// authentication (401) and decoding (400, 413). Then Engine.Purchase:
//
//  1. find: the sale exists, live or archived (404 sale_not_found).
//  2. forSale: an archived sale is read-only (404 sale_not_found), with
//     or without a waiting room (its queue was dropped with the archive,
//     so no ticket could pass the next stage).
//  3. waitingRoom: a sale with a waiting room admits only a buyer with a
//     current ticket (403 not_admitted); the others pass at no cost.
//     Only on that refusal, a buyer admitted whose turn has passed gets
//     the replay of a key it reserved with (replayAfterTurn).
//  4. validate: the quantity fits the sale's per-user limit (400).
//  5. fastPath: paused, not started, ended or sold out (409), and replays
//     of known idempotency keys, answered from the sale's snapshot (one
//     atomic pointer load) and one atomic load of the remaining stock: no
//     lock, no I/O. Nothing after it runs for them.
//  6. open: a closing engine takes no more purchases (503 unavailable).
//  7. buyerRate, saleRate: the per-buyer and per-sale limits (429); only
//     purchases past the fast path count.
//  8. inbox manager (CoDel): refuses while the sale's inbox has stood too
//     long (503 overloaded).
//  9. inbox: bounded; a full one answers 503 overloaded. The purchase
//     then waits for its batch (PurchaseTimeout, then 503).
//
// The sale's owner (owner.go) takes the inbox as one batch, answers
// overloaded those the inbox manager says waited too long, drops callers
// that are gone or past their deadline, and hands the rest to
// Store.Reserve, which decides every rule again, authoritatively.

// PurchaseRequest is one purchase as the API decoded it.
type PurchaseRequest struct {
	SaleID   string
	Purchase surge.Purchase
	// Tickets are the waiting-room tickets sent with it (the values of the
	// Waiting-Room-Ticket header). A sale with a waiting room wants
	// exactly one; a sale without one ignores them.
	Tickets []string
}

// Purchase runs one purchase through the pipeline above. A rejection is
// an Outcome with its code, not an error; errors are sale_not_found,
// not_admitted, invalid_request, rate_limited, overloaded, unavailable,
// or the context's.
func (e *Engine) Purchase(ctx context.Context, req PurchaseRequest) (surge.Outcome, error) {
	p := req.Purchase
	s, sl := e.find(req.SaleID)
	if sl == nil {
		return surge.Outcome{}, surge.ErrSaleNotFound
	}
	if s == nil { // archived: its waiting room's queue is gone with it
		return surge.Outcome{}, surge.ErrSaleNotFound
	}
	if err := e.waitingRoom(ctx, sl, p.UserID, req.Tickets); err != nil {
		return e.replayAfterTurn(s, p, err)
	}
	// invalid is validation's refusal of a keyed purchase above the limit
	// whose key may be on disk only: the store looks, and anything but
	// the key's replay is refused as validation said.
	var invalid error
	if err := surge.ValidatePurchase(sl, p); err != nil {
		out, ok, look := e.replayAboveLimit(s, sl, p)
		if ok {
			return out, nil
		}
		if !look {
			return surge.Outcome{}, err
		}
		invalid = err
	}
	// early: the purchase is refused by this node's clock (not started),
	// and goes to the store only to tell a replay from it (fastPath).
	early := false
	if invalid == nil {
		out, done := e.fastPath(s, sl, p)
		if done {
			return out, nil
		}
		early = out.Code == surge.CodeNotStarted
	}
	if e.closing.Load() {
		return surge.Outcome{}, surge.ErrUnavailable
	}
	// One clock read for the rate limits and the inbox (arrival, deadline).
	now := time.Now()
	// A refusal before the start costs no rate-limit token, whichever
	// path answers it (Config.BuyerRate): the crowd's attempts in the last
	// second must not leave buyers and the sale without tokens at the
	// start. The inbox's bound and admission still apply.
	// The batch that takes an early purchase may be decided after the
	// start, when it can sell: it pays them then (apply).
	if !early {
		if err := e.rateLimits(s, p, now); err != nil {
			return surge.Outcome{}, err
		}
	}
	if s.manager != nil && !s.manager.Admit(len(s.inbox)) {
		e.shed.Add(1)
		return surge.Outcome{}, surge.ErrOverloaded
	}
	out, err := e.post(ctx, s, p, now, early)
	if invalid != nil && err == nil && out.Code != surge.CodeReserved {
		// The store refused it (above the limit). A reservation stands:
		// a replay, or a limit raised since the snapshot sl was taken.
		return surge.Outcome{}, invalid
	}
	return out, err
}

// find returns the live sale (nil if archived) and a snapshot of the
// sale (nil if there is no such sale), which every later stage reads: the
// purchase is judged against one version of the sale, whatever an
// operator changes meanwhile (the store decides again against the latest).
func (e *Engine) find(id string) (*sale, *surge.Sale) {
	if s := e.lookup(id); s != nil {
		return s, s.snap()
	}
	if st, ok := e.archived.Load().byID[id]; ok {
		return nil, &st.Sale
	}
	return nil, nil
}

// replayAboveLimit answers the replay of a key that reserved more units
// than the sale's per-user limit now allows (an operator lowered it since,
// steer.go): the key's first answer stands, as for any replay. Only a key
// this node knows is durable is answered; look reports a key the store
// may keep on disk only (KeyMaybe) or is committing (KeyPending), or, with
// a shared store, a key this node does not know (KeyUnknown: another node
// may have reserved with it), which the store must decide (it replays
// the key, or refuses the purchase above the limit, reserving nothing).
// Validation's refusal stands for the others (KeyAbsent among them). It
// runs on validation's error path only.
func (e *Engine) replayAboveLimit(s *sale, sl *surge.Sale, p surge.Purchase) (out surge.Outcome, ok, look bool) {
	if p.IdempotencyKey == "" || p.Quantity <= sl.PerUserLimit {
		return surge.Outcome{}, false, false
	}
	// The rest must pass what a store checks of every purchase: one that
	// fails it (a quantity over MaxStock) would fail its whole batch there.
	if surge.CheckPurchase(p) != nil {
		return surge.Outcome{}, false, false
	}
	o, st := e.store.LookupKey(s.ID, p.UserID, p.IdempotencyKey)
	if st == surge.KeyMaybe || st == surge.KeyPending || (st == surge.KeyUnknown && e.shared != nil) {
		return surge.Outcome{}, false, true
	}
	if st != surge.KeyDone || o.Quantity != p.Quantity {
		return surge.Outcome{}, false, false
	}
	return surge.Outcome{Code: surge.CodeReserved, Order: o, Replay: true}, true, false
}

// waitingRoom is the gate of a sale with a waiting room: nil if one of
// tickets admits the buyer now, else a not_admitted error saying why.
func (e *Engine) waitingRoom(ctx context.Context, sl *surge.Sale, userID string, tickets []string) error {
	if sl.WaitingRoom == nil {
		return nil
	}
	if len(tickets) > 1 {
		return surge.Errorf(surge.CodeNotAdmitted, "send one Waiting-Room-Ticket header, not %d", len(tickets))
	}
	if e.cfg.WaitingRoom == nil {
		// Fail closed: without a room nobody can have been admitted.
		return surge.Errorf(surge.CodeNotAdmitted, "sale %s has a waiting room, and this server runs none", sl.ID)
	}
	var ticket string
	if len(tickets) == 1 {
		ticket = tickets[0]
	}
	return e.cfg.WaitingRoom.Check(ctx, sl, userID, ticket)
}

// replayAfterTurn answers a purchase the waiting room refused (refused):
// the refusal, unless the buyer's ticket was admitted and only its turn
// has passed (surge.ErrAdmissionOver) and the purchase replays a key it
// reserved with: a buyer whose 201 was lost (the connection cut) gets its
// order back instead of a refusal, as every replay does, and has no other
// way to learn of it. Nothing here can reserve: only a key this node
// knows is durable is answered (KeyDone); a key still committing asks
// for a retry; any other gets the refusal. It runs on the waiting room's
// refusal path only, so an admitted buyer's purchase pays nothing for it.
func (e *Engine) replayAfterTurn(s *sale, p surge.Purchase, refused error) (surge.Outcome, error) {
	if p.IdempotencyKey == "" || !errors.Is(refused, surge.ErrAdmissionOver) || surge.CheckPurchase(p) != nil {
		return surge.Outcome{}, refused
	}
	switch o, st := e.store.LookupKey(s.ID, p.UserID, p.IdempotencyKey); st {
	case surge.KeyDone:
		// Another quantity: the buyer learns so, as in its turn.
		return keyReplay(o, p), nil
	case surge.KeyPending:
		// Its first purchase, made in the turn, is still committing: a
		// retry finds it durable, or finds nothing and gets the refusal.
		return surge.Outcome{}, &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
			Message: "the first purchase with this Idempotency-Key is still being committed; retry with the same key"}
	}
	return surge.Outcome{}, refused
}

// keyReplay answers p, whose key is known durable with o: the replay of
// o, or idempotency_mismatch if the key first bought another quantity
// (replaying would answer a request the client did not send).
func keyReplay(o surge.Order, p surge.Purchase) surge.Outcome {
	if o.Quantity != p.Quantity {
		return surge.Outcome{Code: surge.CodeIdempotencyMismatch}
	}
	return surge.Outcome{Code: surge.CodeReserved, Order: o, Replay: true}
}

// fastPath answers a purchase that is certain to fail (the sale paused or
// not live, or fewer units left than asked), or the replay of a known
// key, from the sale's snapshot sl and one atomic load; done is false when
// the purchase needs the store (out.Code then is not_started when the
// store is asked only to tell a replay from a purchase too early).
func (e *Engine) fastPath(s *sale, sl *surge.Sale, p surge.Purchase) (out surge.Outcome, done bool) {
	now := e.cfg.Now()
	code := sl.Gate(now)
	rem := s.remaining.Load()
	if code == "" && rem < p.Quantity {
		code = surge.CodeSoldOut
	}
	if code == "" && p.IdempotencyKey == "" {
		return surge.Outcome{}, false
	}
	if p.IdempotencyKey != "" {
		switch o, st := e.store.LookupKey(s.ID, p.UserID, p.IdempotencyKey); {
		case st == surge.KeyDone:
			// Known durable (its 201 was answered, or could have been):
			// answered here on a live sale too, so that a retry after a
			// timeout, which comes when the store is slow, never waits in
			// the inbox behind a stalled batch for a 503.
			out := keyReplay(o, p)
			if out.Code == surge.CodeIdempotencyMismatch {
				e.fastRejects.Add(1)
			}
			return out, true
		case code == "":
			return surge.Outcome{}, false // a purchase the store decides
		case st == surge.KeyPending:
			return surge.Outcome{}, false // the owner answers once the first is durable
		case st == surge.KeyMaybe:
			// The store keeps this sale's older keys on disk only: the
			// key may have bought long ago, and the store must look.
			if code != surge.CodeNotStarted {
				return surge.Outcome{}, false
			}
		case st == surge.KeyUnknown:
			// Another node may have reserved with this key: only the
			// shared store can tell a replay from a rejection. Before
			// the start no key can have bought, by this node's clock;
			// but another node's clock may be ahead of it and have
			// sold already, so near the start the store decides too.
			if e.shared != nil && (code != surge.CodeNotStarted || sl.StartsAt.Sub(now) <= nodeClockSkew) {
				// Code tells Purchase why the store is asked.
				return surge.Outcome{Code: code}, false
			}
		case st == surge.KeyAbsent:
			// The shared store holds every key of the sale: not a replay.
		}
	}
	e.fastRejects.Add(1)
	return surge.Outcome{Code: code, Remaining: rem}, true
}

// nodeClockSkew is how far the clocks of the nodes sharing a store may
// differ (docs/cluster.md: NTP keeps them within milliseconds): within it
// of a sale's start, another node may have sold to a key this node's clock
// says cannot have bought yet. It is short because every keyed purchase of
// an unknown key goes to the store within it, in the crowd before a start.
const nodeClockSkew = time.Second

// rateLimits applies the buyer's and the sale's rate limits to p at now.
func (e *Engine) rateLimits(s *sale, p surge.Purchase, now time.Time) error {
	if err := e.limit(e.cfg.BuyerRate, p.UserID, now, "too many purchases from this buyer"); err != nil {
		return err
	}
	return e.limit(e.cfg.SaleRate, s.ID, now, "the sale admits a limited number of purchases per second")
}

// limit applies one keyed rate limit (nil: none) at now.
func (e *Engine) limit(lim RateLimiter, key string, now time.Time, why string) error {
	if lim == nil {
		return nil
	}
	ok, wait := lim.Allow(key, now)
	if ok {
		return nil
	}
	e.shed.Add(1)
	return &surge.Error{Code: surge.CodeRateLimited, Message: why + "; retry after the time in Retry-After", RetryAfter: wait}
}

// post puts a purchase, arrived at start, in its sale's inbox and waits
// for the answer.
func (e *Engine) post(ctx context.Context, s *sale, p surge.Purchase, start time.Time, early bool) (surge.Outcome, error) {
	// Only purchases in an inbox pay for a deadline; the fast path never
	// waits, so it needs none. Requests and their timers are pooled: under
	// a spike this path runs hundreds of thousands of times a second.
	r := e.reqs.Get().(*request)
	r.ctx, r.p, r.arrived, r.deadline, r.early = ctx, p, start, start.Add(e.cfg.PurchaseTimeout), early
	select {
	case s.inbox <- r:
	default:
		r.ctx = nil
		e.reqs.Put(r)
		return surge.Outcome{}, surge.ErrOverloaded
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
		return res.out, res.err
	// On the two exits below the owner still holds r and will answer on
	// r.done, so r is not reused. The purchase may still commit; a retry
	// with the same Idempotency-Key finds it.
	case <-r.timer.C:
		return surge.Outcome{}, timedOut(p)
	case <-ctx.Done():
		return surge.Outcome{}, ctx.Err()
	}
}

// ErrTimeout answers a purchase whose batch did not commit within
// Config.PurchaseTimeout. The purchase may still commit: a retry with the
// same Idempotency-Key returns it.
var ErrTimeout = &surge.Error{Code: surge.CodeUnavailable, Message: "timed out waiting for the purchase to commit; retry with the same Idempotency-Key"}

// errTimeoutKeyless is ErrTimeout's message for a purchase sent without an
// Idempotency-Key: it has no key to send again, and its batch may be at
// the store, so a retry would be a second purchase (within the per-user
// limit), not a replay. Telling it to retry, as if nothing had been
// bought, hid that.
var errTimeoutKeyless = &surge.Error{Code: surge.CodeUnavailable,
	Message: "timed out waiting for the purchase to commit; it may still commit, and a retry would then be a second purchase"}

// timedOut is ErrTimeout as p is answered it: a purchase without a key is
// not told to retry with the same key (its message is errTimeoutKeyless's,
// and errors.Is still finds ErrTimeout).
func timedOut(p surge.Purchase) error {
	if p.IdempotencyKey != "" {
		return ErrTimeout
	}
	return keylessTimeout{}
}

// keylessTimeout is ErrTimeout with errTimeoutKeyless's message: errors.As
// finds errTimeoutKeyless first, errors.Is finds ErrTimeout.
type keylessTimeout struct{}

func (keylessTimeout) Error() string   { return errTimeoutKeyless.Error() }
func (keylessTimeout) Unwrap() []error { return []error{errTimeoutKeyless, ErrTimeout} }

// request is a purchase in an inbox.
type request struct {
	ctx      context.Context
	arrived  time.Time // when it entered the inbox
	deadline time.Time // the owner drops the request after it
	p        surge.Purchase
	// early: refused not_started by this node's clock when it came, so it
	// has not paid the rate limits (Purchase).
	early bool
	done  chan result // buffered: the owner never blocks on a gone caller
	timer *time.Timer
}

type result struct {
	out surge.Outcome
	err error
}
