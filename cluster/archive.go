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
// lists it). Its orders stay in PostgreSQL, readable. The archive also
// records that the live state may be left (live_left), cleared once it
// is removed: should Redis fail right then, the leader's round removes it
// (removeLeft); nothing else ever would.

// ArchiveSale implements surge.Archiver. Once PostgreSQL is asked, the
// archive runs to its end whatever the caller's context says (runToEnd;
// the call timeout still bounds each step): a caller gone during the
// commit was answered as failed while the sale was archived, and this
// node kept it in memory and its live state in Redis.
func (s *Store) ArchiveSale(ctx context.Context, saleID string, now time.Time) (surge.ArchivedSale, error) {
	if s.closed.Load() {
		return surge.ArchivedSale{}, surge.ErrUnavailable
	}
	ctx = runToEnd(ctx)
	var a postgres.Archived
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		a, err = s.db.ArchiveSale(ctx, saleID, now)
		return err
	})
	if err != nil && surge.ErrorCode(err) == "" {
		// PostgreSQL did not say why (the connection dropped, the timeout
		// cut it): the COMMIT may have landed, and then a retry gets
		// 404. The archive at now, if PostgreSQL holds it, is this one.
		var found bool
		if cerr := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
			a, found, err = s.db.ArchivedOne(ctx, saleID)
			return err
		}); cerr == nil && found && a.ArchivedAt.Equal(now.UTC().Truncate(time.Millisecond)) {
			s.log.Warn("the answer to a sale's archive was lost, and PostgreSQL holds the archive", "sale", saleID, "err", err)
			err = nil
		}
	}
	if err != nil {
		return surge.ArchivedSale{}, unavailable("archiving the sale", err)
	}
	s.forget(saleID)
	s.removeLive(ctx, saleID, a.Buckets)
	// "" (anything may have changed) rather than the id: the nodes then
	// list the sales again, as their poll does, and drop the one gone.
	s.announce(ctx, "")
	s.log.Info("sale archived", "sale", saleID, "remaining", a.Remaining)
	return a.ArchivedSale, nil
}

// removeLive removes the live state of the archived sale saleID from
// Redis, and its waiting room (the API drops it too, after the archive,
// but nothing tried again should that fail: up to a million buyers stayed
// in Redis for good), and records them removed. Only memory is at stake if
// either fails: the sale stays recorded as left, and the leader's round
// tries again.
func (s *Store) removeLive(ctx context.Context, saleID string, buckets int) {
	if err := s.call(ctx, s.rcb, func(ctx context.Context) error {
		if err := s.live.Remove(ctx, redis.Layout{Sale: saleID, Buckets: max(buckets, 1)}); err != nil {
			return err
		}
		return redis.NewQueues(s.rc, s.cfg.Prefix, 0).Drop(ctx, saleID)
	}); err != nil {
		s.log.Warn("remove the live state of an archived sale; the leader removes it", "sale", saleID, "err", err)
		return
	}
	if err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.LiveRemoved(ctx, saleID) }); err != nil {
		s.log.Warn("record the live state of an archived sale removed; the leader removes it again", "sale", saleID, "err", err)
	}
}

// leftBatch bounds the archived sales whose live state one round removes.
const leftBatch = 100

// removeLeft removes the live state archives left in Redis (removeLive
// failed: Redis down, or the node gone, right after the commit).
func (s *Store) removeLeft(ctx context.Context) {
	var left map[string]int
	if err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		left, err = s.db.LiveLeft(ctx, leftBatch)
		return err
	}); err != nil {
		return
	}
	for id, buckets := range left {
		if ctx.Err() != nil {
			return
		}
		s.removeLive(ctx, id, buckets)
	}
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
