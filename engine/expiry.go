package engine

import (
	"context"
	"time"
)

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
