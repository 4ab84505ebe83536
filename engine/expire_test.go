package engine

import (
	"context"
	"time"

	"github.com/surgehq/surge"
)

// expirer is a store's expiry job run on demand (storetest.Expirer).
type expirer interface {
	Expire(ctx context.Context, now time.Time) ([]surge.Order, error)
}

// ExpireNow runs the store's expiry at the engine's clock, as its own job
// does at the wall clock; the store reports the units it gave back
// (surge.Releaser), so the engine's hints are raised before it returns.
// The tests' stores run no job of their own (NoExpiry).
func (e *Engine) ExpireNow() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	defer cancel()
	if _, err := e.store.(expirer).Expire(ctx, e.cfg.Now()); err != nil {
		e.log.Error("expire holds", "err", err)
	}
}
