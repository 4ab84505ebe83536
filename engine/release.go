package engine

import (
	"context"

	"github.com/surgehq/surge/metrics"
)

// released hears from a store that gave units back on its own (its expiry
// job, surge.Releaser): the sale's remaining-stock hint is reloaded, so the
// fast path sells the units again.
func (e *Engine) released(saleID string, expired int) {
	e.Meter(saleID).Transition(metrics.ToExpired, expired)
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	defer cancel()
	e.refresh(ctx, saleID)
}
