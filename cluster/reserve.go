package cluster

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// The purchase path of the cluster Store: Reserve and its steps, and the
// lookups the engine makes beside it.

var errReplayUnconfirmed = &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
	Message: "the first purchase with this Idempotency-Key is still being committed; retry with the same key"}

// errRebuilding answers a batch the sale's live state cannot decide until
// it is rebuilt (lost, fenced, behind PostgreSQL): a recovery the store
// reports itself (the rebuild's line; stateMissing's ERROR should it
// last), so the engine logs the batch below ERROR, under a limit of its
// own (surge.ErrDependencyDown). At ERROR, under the sale's limit, it hid
// the next real failure of the sale for the limit's period.
var errRebuilding = surge.DependencyDown(&surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
	Message: "the sale's live stock is being rebuilt from the database; retry shortly"})

// untilReconciled is how long a retry with the key of a reservation made
// at made, which PostgreSQL does not have, waits for the leader: it
// reconciles a reservation once it is ConfirmAfter old (diagnose), at its
// next round. A Retry-After of a second (the breaker's own window) sent
// the buyer back to a 503 again and again for ten seconds, and the Go
// client, five attempts, gave up before the purchase could go through.
// A made from a clock ahead of the wall clock (a test's) waits no longer
// than a reservation made now. made is on PostgreSQL's clock as this node
// reads it (clock.go), the wall clock this node's.
func (s *Store) untilReconciled(made time.Time) time.Duration {
	most := s.cfg.ConfirmAfter + s.cfg.Interval
	return max(min(time.Until(made.Add(most-s.offsetNow())), most), s.cfg.BreakerOpen, time.Second)
}

// Reserve implements surge.Store: one Redis script call decides the
// batch, one fenced PostgreSQL statement commits its new orders (and checks
// that replayed orders from other nodes are durable). The batch's instant
// is read from clock as it goes to Redis, after the sale is looked up, and
// read again for the second decision a change of the hold on another node
// asks for (after a PostgreSQL read). A time read by the engine before
// then decided a batch that reached Redis after an operator's end (a new
// epoch, its state installed) at an instant before that end: it reserved,
// and committed under the new epoch, after the sale was answered ended.
func (s *Store) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	b, err := s.newBatch(ctx, saleID, batch, clock)
	if err != nil {
		return nil, 0, err
	}
	if err := s.commitReachable(ctx); err != nil {
		return nil, 0, err
	}
	res, err := s.decide(ctx, b)
	if errors.Is(err, redis.ErrStaleHold) {
		// Another node changed the sale's hold, and this node's copy of
		// the sale is older: Redis reserved nothing. Read the sale as
		// PostgreSQL holds it, and decide once more with its hold.
		if _, err := s.Sale(ctx, saleID); err != nil {
			return nil, 0, err
		}
		if b, err = s.newBatch(ctx, saleID, batch, clock); err != nil {
			return nil, 0, err
		}
		res, err = s.decide(ctx, b)
		if errors.Is(err, redis.ErrStaleHold) {
			err = errRebuilding
		}
	}
	if err != nil {
		return nil, 0, err
	}
	outs, orders, confirm := b.outcomes(res.Decisions, s.keys)
	if len(orders) == 0 && len(confirm) == 0 {
		return outs, res.Remaining, nil
	}
	missing, err := s.commit(ctx, saleID, res.Epoch, orders, confirm, newestReplay(outs), batch)
	if err != nil {
		return nil, 0, err
	}
	s.answerReplays(outs, missing)
	return outs, res.Remaining, nil
}

// commitReachable refuses a batch before Redis decides it while this node
// knows PostgreSQL down: its breaker open, or half-open and its probe (a
// ping, made here) failing. Redis would take the batch's units for orders
// no commit can follow, and they stayed off sale until the leader
// reconciled them (--cluster-confirm-after): the new buyers of a short
// outage took the whole stock so, and those after them were answered
// sold_out by a sale that had sold nothing (TestPostgresDownTakesNoStock).
// While PostgreSQL is up it costs one look at the breaker's state a batch.
func (s *Store) commitReachable(ctx context.Context) error {
	if s.pcb.State() == gobreaker.StateClosed {
		return nil
	}
	if err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.Ping(ctx) }); err != nil {
		// Known down: the breaker logs its state (breakerChanged).
		return surge.DependencyDown(unavailable("reaching PostgreSQL", err))
	}
	return nil
}

// reservation is one batch on its way through Reserve.
type reservation struct {
	sale saleInfo
	redis.Batch
}

// newBatch validates a batch against its sale and gives every purchase
// the id its order gets if reserved. The batch is decided at clock's
// reading once the sale is known.
func (s *Store) newBatch(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) (reservation, error) {
	if s.closed.Load() {
		return reservation{}, surge.ErrUnavailable
	}
	sl, err := s.sale(ctx, saleID)
	if err != nil {
		return reservation{}, err
	}
	// The limit is reserve.lua's and PostgreSQL's, purchase by purchase
	// (surge.CheckPurchase).
	for _, p := range batch {
		if err := surge.CheckPurchase(p); err != nil {
			return reservation{}, err
		}
	}
	now := clock().UTC().Truncate(time.Millisecond)
	ids := make([]string, len(batch))
	s.ids.Fill(now, ids)
	return reservation{sale: sl, Batch: redis.Batch{Purchases: batch, IDs: ids, Now: now, Expires: now.Add(sl.Hold())}}, nil
}

// decide has Redis decide the batch, and refuses an answer from a Redis
// that is missing the sale's state or came back older than PostgreSQL.
func (s *Store) decide(ctx context.Context, b reservation) (redis.Decided, error) {
	saleID := b.sale.ID
	// Read before Redis is: everything PostgreSQL had committed by then,
	// Redis had reserved before.
	floor := s.everSeen(saleID)
	var res redis.Decided
	err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		res, err = s.live.Reserve(ctx, b.sale.layout, b.Batch)
		return err
	})
	if errors.Is(err, redis.ErrNoState) {
		s.wake()
		s.stateMissing(saleID, -1)
		return res, errRebuilding
	}
	if errors.Is(err, redis.ErrStaleHold) {
		return res, err
	}
	if err != nil {
		return res, unavailable("deciding the batch in Redis", err)
	}
	s.stateDecided(saleID, res.Epoch)
	// Compared before this batch's own reservations: the units it has just
	// taken are not in PostgreSQL yet, and counted they hid a Redis that
	// came back older by up to the batch's size (its other answers, from
	// the older state, were trusted: a buyer's durable key refused at the
	// limit a cancel the rollback lost still counted).
	before := res.Taken - reservedUnits(b.Purchases, res.Decisions)
	if before < floor && !s.everWentBack(ctx, saleID, before, floor) {
		// Redis has reserved fewer units than PostgreSQL committed: it
		// came back older than PostgreSQL (a snapshot or AOF reloaded, a
		// replica promoted), whatever its epoch says. Its answers are
		// not to be trusted, this batch's included, until the leader
		// rebuilds it (it compares the same counts).
		s.log.Warn("Redis is behind PostgreSQL; marking the sale for a rebuild", "sale", saleID,
			"redis_taken", before, "postgres_ever", floor)
		s.markDirty(ctx, saleID)
		return res, errRebuilding
	}
	s.sawDecision(saleID, b.Batch, res) // keycopy.go
	return res, nil
}

// reservedUnits is the units Redis reserved for new orders of batch in
// dec (replays reserve nothing).
func reservedUnits(batch []surge.Purchase, dec []redis.Decision) int64 {
	var n int64
	for i, d := range dec {
		if d.Code == surge.CodeReserved && d.Replay.ID == "" {
			n += batch[i].Quantity
		}
	}
	return n
}

// everWentBack tells whether PostgreSQL itself now counts no more units
// ever inserted than Redis reserved (taken), below what this node saw
// (floor): PostgreSQL, not Redis, went back (restored from an older
// backup), and the floor, which only grows, would refuse every batch of
// the sale for good. The floor becomes PostgreSQL's count. Read after
// Redis decided, PostgreSQL's count can only be larger, never hide a
// Redis that came back older.
func (s *Store) everWentBack(ctx context.Context, saleID string, taken, floor int64) bool {
	var row postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		row, err = s.db.Sale(ctx, saleID)
		return err
	})
	if err != nil || row.Ever > taken {
		return false
	}
	s.log.Warn("PostgreSQL counts fewer units ever sold than this node saw it commit (restored from an older backup?); following PostgreSQL",
		"sale", saleID, "postgres_ever", row.Ever, "seen_ever", floor, "redis_taken", taken)
	s.mu.Lock()
	s.ever[saleID] = row.Ever
	s.mu.Unlock()
	return true
}

// outcomes turns Redis's decisions into the batch's outcomes, the new
// orders to insert, and the replays of orders this node does not know to
// be durable (made on another node), which PostgreSQL must confirm.
func (b reservation) outcomes(dec []redis.Decision, known *keyCache) (outs []surge.Outcome, orders []surge.Order, confirm []string) {
	saleID := b.sale.ID
	outs = make([]surge.Outcome, len(b.Purchases))
	// Sized once: an Order is large, and growing the slice by appends
	// copied a batch's orders about twice over.
	n := 0
	for _, d := range dec {
		if d.Code == surge.CodeReserved && d.Replay.ID == "" {
			n++
		}
	}
	if n > 0 {
		orders = make([]surge.Order, 0, n)
	}
	for i, d := range dec {
		p := b.Purchases[i]
		switch {
		case d.Code == surge.CodeReserved && d.Replay.ID == "":
			o := surge.Order{ID: b.IDs[i], SaleID: saleID, UserID: p.UserID, Quantity: p.Quantity,
				Status: surge.OrderReserved, IdempotencyKey: p.IdempotencyKey, CreatedAt: b.Now, ExpiresAt: b.Expires}
			orders = append(orders, o)
			outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: o}
		case d.Code == surge.CodeIdempotencyMismatch:
			// The key first answered another quantity: not a replay. Err
			// too, so the purchase fails alone as the 422 it is.
			outs[i] = surge.Outcome{Code: d.Code, Err: surge.ErrIdempotencyMismatch}
		case d.Code == surge.CodeReserved:
			o := d.Replay
			o.SaleID, o.UserID, o.IdempotencyKey = saleID, p.UserID, p.IdempotencyKey
			outs[i] = surge.Outcome{Code: surge.CodeReserved, Order: o, Replay: true}
			// Known durable only if it is the very order this node saw
			// committed: a Redis that came back older may have taken the
			// key anew for an order PostgreSQL then refused, and replays
			// that one until the sale is rebuilt. It is confirmed like
			// any other (503 until then, never a 201 for no order).
			if k, ok := known.get(saleID, p.UserID, p.IdempotencyKey); (!ok || k.ID != o.ID) && !freshIn(orders, o.ID) {
				confirm = append(confirm, o.ID)
			}
		default:
			outs[i] = surge.Outcome{Code: d.Code, Remaining: d.Remaining}
		}
	}
	return outs, orders, confirm
}

// freshIn tells whether id is one of orders, the batch's new orders so far:
// a replay of a key first used earlier in the same batch, durable with it.
// Replays are rare in a batch, so a scan beats keeping a set for every one.
func freshIn(orders []surge.Order, id string) bool {
	for i := range orders {
		if orders[i].ID == id {
			return true
		}
	}
	return false
}

// newestReplay is when the newest order the batch's replays answer with
// was made (zero without replays).
func newestReplay(outs []surge.Outcome) time.Time {
	var t time.Time
	for i := range outs {
		if outs[i].Replay && outs[i].Order.CreatedAt.After(t) {
			t = outs[i].Order.CreatedAt
		}
	}
	return t
}

// commit inserts the batch's new orders under the epoch Redis decided
// them in, and returns the replays to confirm that PostgreSQL does not
// have yet. replayed is when the newest of the orders replayed was made.
// batch is the purchases they came from: a failure's 503 tells their
// buyers how to retry (retryAdvice), worked out only then.
func (s *Store) commit(ctx context.Context, saleID string, epoch int64, orders []surge.Order, confirm []string, replayed time.Time, batch []surge.Purchase) (missing []string, err error) {
	var ever int64
	var ok bool
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		ever, missing, err = s.db.InsertOrders(ctx, saleID, epoch, orders, confirm)
		return err
	})
	if err != nil {
		// The units stay taken in Redis until the leader finds these
		// orders missing from PostgreSQL and rebuilds; a retry with the
		// same key meanwhile gets errReplayUnconfirmed, never a second order.
		if errors.Is(err, postgres.ErrFenced) {
			s.wake()
			s.stateMissing(saleID, epoch) // Redis holds an epoch the leader replaced
			return nil, errRebuilding
		}
		if errors.Is(err, postgres.ErrRefused) {
			// PostgreSQL, the truth, refused what Redis decided: Redis
			// lost or rolled back state. None of the batch is answered
			// reserved, and the sale is rebuilt.
			s.log.Warn("PostgreSQL refused a batch Redis decided; marking the sale for a rebuild", "sale", saleID, "err", err)
			s.markDirty(ctx, saleID)
			return nil, errRebuilding
		}
		if errors.Is(err, postgres.ErrNotSent) && s.giveBack(ctx, saleID, orders) {
			// No connection of the pool was free: nothing reached
			// PostgreSQL, and the units are back on sale already. The
			// buyers wait no longer than for the pool, not for the leader.
			return nil, unavailableUntil("committing the orders to PostgreSQL", err, max(s.cfg.BreakerOpen, time.Second), retryAdvice(batch))
		}
		if missing, ok = s.insertLanded(ctx, saleID, orders, confirm); !ok {
			// The batch's reservations stay in Redis, their keys answering
			// errReplayUnconfirmed, until the leader reconciles them: a
			// retry sooner is refused again, whatever the breaker says.
			if len(orders) > 0 {
				return nil, unavailableUntil("committing the orders to PostgreSQL", err, s.untilReconciled(orders[0].CreatedAt), retryAdvice(batch))
			}
			// A batch of replays only reserved nothing: its retries wait
			// only for the orders they replay, if one is young enough to
			// be a reservation still waiting for the leader (an older one
			// the leader has reconciled, or given back). The wait of a
			// reservation made now sent every such buyer away for
			// ConfirmAfter and a round (11 s) after a PostgreSQL blip.
			return nil, unavailableUntil("checking the replayed orders in PostgreSQL", err, s.untilReconciled(replayed), retryAdvice(batch))
		}
		s.log.Warn("a batch's insert whose call failed committed all the same", "sale", saleID, "size", len(orders), "err", err)
	}
	if ever > 0 {
		s.sawEver(saleID, ever)
	}
	s.stateFound(saleID)
	if len(orders) > 0 {
		s.commits.Observe(len(orders))
	}
	s.keys.putAll(orders)
	return missing, nil
}

// giveBack takes the units of orders, a batch's new orders whose insert
// was never sent (postgres.ErrNotSent), back into the sale's live state at
// once, with their keys: left there, they stayed off sale, and their
// buyers' retries were refused, for about ConfirmAfter, until the leader
// found them never committed. It runs to its end whatever ctx says, as the
// units must come back. false if Redis could not (or, for a sale of more
// buckets, would not) take them back: the leader reconciles them then.
func (s *Store) giveBack(ctx context.Context, saleID string, orders []surge.Order) bool {
	if len(orders) == 0 {
		return false
	}
	ctx = runToEnd(ctx)
	sl, err := s.sale(ctx, saleID)
	if err != nil {
		return false
	}
	var ok bool
	err = s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		ok, err = s.live.GiveBack(ctx, sl.layout, orders)
		return err
	})
	if err != nil || !ok {
		return false
	}
	// Units came back: this node's copy of the sale's keys proves nothing
	// now, and the other nodes' neither once they hear. The notification
	// needs a connection of the pool, which is busy: it goes on after the
	// buyers are answered.
	s.copies.invalidate(saleID)
	if !s.closed.Load() {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.announce(s.bg, saleID) }()
	}
	return true
}

// retryAdvice is what the 503 of a batch whose commit failed tells its
// buyers to do (every one of them gets the same answer): only a purchase
// sent with an Idempotency-Key has a key to send again.
func retryAdvice(batch []surge.Purchase) string {
	keyed := 0
	for _, p := range batch {
		if p.IdempotencyKey != "" {
			keyed++
		}
	}
	switch keyed {
	case len(batch):
		return "retry with the same Idempotency-Key after Retry-After"
	case 0:
		return "retry after Retry-After"
	default:
		return "retry after Retry-After, with the same Idempotency-Key if the purchase had one"
	}
}

// insertLanded tells whether the insert of orders, whose call failed, committed
// all the same: the call timed out, or lost its connection, after
// PostgreSQL had the statement, and the cancel that follows a timeout came
// too late or never arrived. It waits for the sale's inserts in flight to
// end (within the call timeout) and looks the orders up; if they are
// there, it returns which of confirm PostgreSQL does not have. Without
// this the buyers were told 503 and to wait for the leader's
// reconciliation (about ConfirmAfter) for orders that were durable.
func (s *Store) insertLanded(ctx context.Context, saleID string, orders []surge.Order, confirm []string) (missing []string, ok bool) {
	if len(orders) == 0 {
		return nil, false
	}
	ids := make([]string, 0, len(orders)+len(confirm))
	for i := range orders {
		ids = append(ids, orders[i].ID)
	}
	ids = append(ids, confirm...)
	var have map[string]bool
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		have, err = s.db.ExistingAfterInserts(ctx, saleID, ids)
		return err
	})
	// One statement inserts them all, or none.
	if err != nil || !have[orders[0].ID] {
		return nil, false
	}
	for _, id := range confirm {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing, true
}

// answerReplays fails the replays whose first order PostgreSQL does not
// have yet (missing), and remembers the others' keys as durable.
func (s *Store) answerReplays(outs []surge.Outcome, missing []string) {
	for i := range outs {
		o := &outs[i]
		if !o.Replay {
			continue
		}
		if slices.Contains(missing, o.Order.ID) {
			e := *errReplayUnconfirmed
			e.RetryAfter = s.untilReconciled(o.Order.CreatedAt)
			*o = surge.Outcome{Err: &e}
			continue
		}
		s.keys.put(o.Order)
	}
}

// LookupKey implements surge.Store from this node's memory: keys it
// committed or confirmed, and the newest ones in PostgreSQL when it
// started. A key made on another node may be unknown here, which is why
// Store is a surge.Shared.
func (s *Store) LookupKey(saleID, userID, key string) (surge.Order, surge.KeyState) {
	if o, ok := s.keys.get(saleID, userID, key); ok {
		return o, surge.KeyDone
	}
	return s.copies.lookup(saleID, userID, key) // keycopy.go
}

// Remaining implements surge.Store: the live figure from Redis, or the
// truth from PostgreSQL while Redis has none.
func (s *Store) Remaining(ctx context.Context, saleID string) (int64, error) {
	sl, err := s.sale(ctx, saleID)
	if err != nil {
		return 0, err
	}
	var rem, taken int64
	err = s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		rem, taken, err = s.live.Totals(ctx, sl.layout)
		return err
	})
	if err == nil {
		s.copies.observe(saleID, rem, taken) // keycopy.go
		return rem, nil
	}
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		rem, err = s.db.Remaining(ctx, saleID)
		return err
	})
	if err != nil {
		return 0, unavailable("reading the remaining stock", err)
	}
	return rem, nil
}
