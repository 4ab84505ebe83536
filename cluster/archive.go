package cluster

import (
	"context"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// Archiving: PostgreSQL marks the sale archived (and bumps its epoch, so no
// batch decided before can insert); this node forgets it and removes its
// live state from Redis; the announcement makes every node's engine drop
// it (or their next poll, if the announcement is lost: Sales no longer
// lists it). Its orders stay in PostgreSQL, readable.

// ArchiveSale implements surge.Archiver.
func (s *Store) ArchiveSale(ctx context.Context, saleID string, now time.Time) (surge.ArchivedSale, error) {
	if s.closed.Load() {
		return surge.ArchivedSale{}, surge.ErrUnavailable
	}
	var a postgres.Archived
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		a, err = s.db.ArchiveSale(ctx, saleID, now)
		return err
	})
	if err != nil {
		return surge.ArchivedSale{}, unavailable("archiving the sale", err)
	}
	s.forget(saleID)
	// Only memory is at stake if this fails: the leader never rebuilds
	// an archived sale, and nothing reads the state any more.
	if err := s.call(ctx, s.rcb, func(ctx context.Context) error {
		return s.live.Remove(ctx, redis.Layout{Sale: saleID, Buckets: max(a.Buckets, 1)})
	}); err != nil {
		s.log.Warn("remove the live state of an archived sale", "sale", saleID, "err", err)
	}
	// "" (anything may have changed) rather than the id: the nodes then
	// list the sales again, as their poll does, and drop the one gone.
	s.announce(ctx, "")
	s.log.Info("sale archived", "sale", saleID, "remaining", a.Remaining)
	return a.ArchivedSale, nil
}

// ArchivedSales implements surge.Archiver.
func (s *Store) ArchivedSales(ctx context.Context) ([]surge.ArchivedSale, error) {
	var out []surge.ArchivedSale
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		out, err = s.db.ArchivedSales(ctx)
		return err
	})
	if err != nil {
		return nil, unavailable("listing archived sales", err)
	}
	return out, nil
}

// forget drops a sale from this node's memory.
func (s *Store) forget(saleID string) {
	s.mu.Lock()
	delete(s.sales, saleID)
	delete(s.ever, saleID)
	s.mu.Unlock()
	s.copies.drop(func(sale string) bool { return sale == saleID })
}

// keepOnly drops from memory the sales a full listing no longer holds
// (archived, possibly by another node). Remembering is a cache: a sale
// created meanwhile and dropped by mistake is read again on first use.
func (s *Store) keepOnly(rows []postgres.SaleRow) {
	listed := make(map[string]bool, len(rows))
	for _, r := range rows {
		listed[r.ID] = true
	}
	s.mu.Lock()
	for id := range s.sales {
		if !listed[id] {
			delete(s.sales, id)
			delete(s.ever, id) // as forget does: read again with the sale
		}
	}
	s.mu.Unlock()
	s.copies.drop(func(sale string) bool { return !listed[sale] })
}

// knownSale is nil for a sale that exists, archived or not: its orders
// stay readable.
func (s *Store) knownSale(ctx context.Context, saleID string) error {
	_, err := s.sale(ctx, saleID)
	if !surge.HasCode(err, surge.CodeSaleNotFound) {
		return err
	}
	var archived bool
	if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		archived, err = s.db.Archived(ctx, saleID)
		return err
	}); err != nil {
		return unavailable("loading the sale", err)
	}
	if !archived {
		return surge.ErrSaleNotFound
	}
	return nil
}

var _ surge.Archiver = (*Store)(nil)
