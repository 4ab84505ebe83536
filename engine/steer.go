package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
)

// Steering a live sale. The pipeline reads a sale through its snapshot
// (sale.cur), an atomic pointer to a surge.Sale that is never modified:
// a change makes a new Sale and swaps the pointer, so the fast path still
// costs one atomic load, no lock and no allocation, and every stage of one
// purchase sees one version of the sale. The store decides every purchase
// again against its own, authoritative copy, which it changes under the
// sale's lock (surge.Steerer): a snapshot that lags (another node's change
// not heard of yet) only sends a purchase to the store that the fast path
// could have answered, or answers one the store would have refused anyway
// had it been asked a moment earlier.

// UpdateSale applies p to a sale in service (PATCH /v1/sales/{id}): the
// store makes it durable, then the pipeline's snapshot and remaining-stock
// hint follow, before it returns. An archived or unknown sale is
// sale_not_found; an empty patch changes nothing and answers the sale.
func (e *Engine) UpdateSale(ctx context.Context, id string, p surge.SalePatch) (SaleState, error) {
	steer, ok := e.store.(surge.Steerer)
	if !ok {
		return SaleState{}, fmt.Errorf("engine: the store (%T) cannot change sales", e.store)
	}
	if e.closing.Load() {
		return SaleState{}, surge.ErrUnavailable
	}
	s := e.lookup(id)
	if s == nil {
		return SaleState{}, surge.ErrSaleNotFound
	}
	if p.Empty() {
		return e.state(s), nil
	}
	// Answered within PurchaseTimeout, as a purchase and an order change
	// are: a store stalled on its disk must not hold the request for as
	// long as it stalls, nor the sale's next change waiting for snapMu.
	// The store gives up only before it writes, so a timeout then changes
	// nothing; a write under way goes on, and the snapshot follows it
	// (saleChange; the cluster store bounds the call itself).
	sctx, cancel := context.WithTimeout(ctx, e.cfg.PurchaseTimeout)
	defer cancel()
	if err := ctxlock.Lock(sctx, &s.snapMu); err != nil {
		return SaleState{}, storeErr(err)
	}
	return saleChange(sctx, e, s.snapMu.Unlock, func() (SaleState, error) {
		// The store reads the clock once it holds the sale: this server's
		// clock, which decides purchases, not the operator's (one running
		// ahead left the sale live until then), read after the
		// reservations that went ahead of the change.
		next, err := steer.UpdateSale(sctx, id, p, e.cfg.Now)
		if err != nil {
			return SaleState{}, storeErr(err)
		}
		e.steers.Add(1)
		actx, cancel := e.afterward(ctx)
		defer cancel()
		e.setSnap(actx, s, &next)
		e.log.Info("sale changed", "sale", id, "paused", next.Paused, "stock", next.Stock,
			"per_user_limit", next.PerUserLimit, "ends_at", endsAt(next.EndsAt), "hold_seconds", next.HoldSeconds)
		return e.state(s), nil
	})
}

// endsAt is a sale's end as its change is logged: "none" for a sale
// without one (the API's null), rather than the zero time, which read as
// an end in year 1.
func endsAt(t time.Time) slog.Value {
	if t.IsZero() {
		return slog.StringValue("none")
	}
	return slog.TimeValue(t)
}

// follow reloads a sale's snapshot from a store that another node may
// have changed it in; the caller refreshes the remaining stock.
func (e *Engine) follow(ctx context.Context, s *sale) {
	steer, ok := e.store.(surge.Steerer)
	if !ok {
		return
	}
	// Under snapMu, so that a reading older than a change made on this
	// node cannot overwrite it.
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	sl, err := steer.Sale(ctx, s.ID)
	if err != nil {
		return // archived (the listing drops it), or unreachable: the next sync retries
	}
	e.adoptOne(ctx, s, sl)
}

// adopt takes the sales of a store's listing that differ from this
// engine's snapshots, unless the engine changed a sale since steers (the
// count of its changes) was read before the listing: the listing may then
// predate that change, and the next sync reads again. Its own adoptions
// count as changes too, and are expected: each would otherwise stop the
// rest of the listing, and a node that follows by its poll alone (lost
// announcements) would take one changed sale per poll.
func (e *Engine) adopt(ctx context.Context, listed []surge.Sale, steers int64) {
	for _, sl := range listed {
		s := e.lookup(sl.ID)
		if s == nil || sameSale(s.snap(), &sl) {
			continue
		}
		s.snapMu.Lock()
		if e.steers.Load() == steers && e.adoptOne(ctx, s, sl) {
			steers++
		}
		s.snapMu.Unlock()
	}
}

// adoptOne makes sl the sale's snapshot if it differs, and reports whether
// it did (counted in e.steers); the caller holds s.snapMu.
func (e *Engine) adoptOne(ctx context.Context, s *sale, sl surge.Sale) bool {
	if sameSale(s.snap(), &sl) {
		return false
	}
	e.steers.Add(1)
	e.setSnap(ctx, s, &sl)
	e.log.Info("sale changed on another node", "sale", s.ID, "paused", sl.Paused, "stock", sl.Stock,
		"per_user_limit", sl.PerUserLimit, "ends_at", endsAt(sl.EndsAt))
	return true
}

// sameSale reports whether a and b are the same version of a sale.
func sameSale(a, b *surge.Sale) bool {
	x, y := *a, *b
	if (x.WaitingRoom == nil) != (y.WaitingRoom == nil) || x.WaitingRoom != nil && *x.WaitingRoom != *y.WaitingRoom {
		return false
	}
	x.WaitingRoom, y.WaitingRoom = nil, nil
	// The pause's bookkeeping too: a pause and resume made on another node
	// between two polls leave Paused as it was, and a waiting room's clock
	// (surge.Sale.Stopped) must still stop on this node as on that one.
	return x.Name == y.Name && x.Stock == y.Stock && x.PerUserLimit == y.PerUserLimit && x.Paused == y.Paused &&
		x.EndsAt.Equal(y.EndsAt) && x.HoldSeconds == y.HoldSeconds && x.StartsAt.Equal(y.StartsAt) &&
		x.PriceCents == y.PriceCents && x.Currency == y.Currency &&
		x.PausedAt.Equal(y.PausedAt) && x.PausedFor == y.PausedFor
}

// setSnap makes next the sale's snapshot; the caller holds s.snapMu. A
// change of the stock moves the units left with it: the stock left is
// read from the store first, then both are published as one (s.figures),
// so that no read shows the new stock with the units left of the old one
// (more remaining than stock, or "live" with none left).
func (e *Engine) setSnap(ctx context.Context, s *sale, next *surge.Sale) {
	if next.Stock == s.snap().Stock {
		s.cur.Store(next)
		return
	}
	s.releases.Add(1) // a batch deciding meanwhile reloads: see setRemaining
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	rem, err := e.store.Remaining(ctx, s.ID)
	s.figures.Add(1)
	s.cur.Store(next)
	if err == nil {
		s.remaining.Store(rem)
		s.synced.Store(time.Now().UnixNano())
	}
	s.figures.Add(1)
	if err != nil {
		e.log.Warn("refresh remaining", "sale", s.ID, "err", err)
	}
}
