package engine

import (
	"context"
	"time"
)

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
		s.unrefreshed.Store(true)
		e.refreshFailing.Store(true)
		return
	}
	s.remaining.Store(rem)
	s.synced.Store(time.Now().UnixNano())
	s.unrefreshed.Store(false)
	e.refreshFailing.Store(false)
}
