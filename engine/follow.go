package engine

import (
	"context"
	"maps"
	"time"

	"github.com/surgehq/surge"
)

// syncLoop follows a shared store: sales created, changed (steer.go) and
// units returned by other nodes (announced, and polled every SyncInterval in case an
// announcement was lost), so this node's fast path never answers from a
// view more than about a second old.
func (e *Engine) syncLoop() {
	defer e.follower.Done()
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
	if s := e.lookup(id); id != "" && s != nil {
		e.follow(ctx, s) // steer.go: the sale itself may have changed
		e.refresh(ctx, id)
		return
	}
	steers := e.steers.Load()
	listed, err := e.addSales(ctx)
	if err != nil {
		e.log.Warn("sync sales", "err", err)
	}
	e.adopt(ctx, listed, steers) // steer.go: sales changed elsewhere
	for sid, s := range *e.sales.Load() {
		if id == "" || sid == id {
			e.refresh(ctx, s.ID)
		}
	}
}

// addSales starts the pipeline of every sale the store has and this
// engine does not (created on another node).
// It returns the store's listing.
func (e *Engine) addSales(ctx context.Context) ([]surge.Sale, error) {
	sales, err := e.store.Sales(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.dropArchived(ctx, sales); err != nil { // archive.go
		return sales, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return sales, nil
	}
	old := *e.sales.Load()
	var m map[string]*sale
	for _, sl := range sales {
		if _, ok := old[sl.ID]; ok {
			continue
		}
		s, err := e.newSale(ctx, sl)
		if err != nil {
			return sales, err
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
	return sales, nil
}
