package cluster

import (
	"context"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// CreateSale implements surge.Store.
func (s *Store) CreateSale(ctx context.Context, sl surge.Sale) error {
	buckets := max(s.cfg.Buckets, 1)
	layout := redis.Layout{Sale: sl.ID, Buckets: buckets}
	staged := false
	// The live state starts empty at epoch 1, installed before the sale's
	// row commits: a leader that saw the row first would take the state
	// for lost and rebuild it, failing the first purchases. If the install
	// fails the leader builds it; purchases answer 503 until then. It goes
	// through the Redis breaker, within three quarters of what the
	// insert's call has left: a Redis stalled (or known down) used the
	// whole call, and the sale, which commits whatever the install
	// returns, then failed to commit.
	install := func(ctx context.Context) {
		staged = true // even should it fail part-way: it may have staged keys
		left := s.cfg.CallTimeout
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		ictx, cancel := context.WithTimeout(ctx, left*3/4)
		defer cancel()
		if err := s.call(ictx, s.rcb, func(ctx context.Context) error {
			_, err := s.live.Install(ctx, surge.LiveState{Sale: sl, Buckets: buckets, Epoch: 1}, true, nil)
			return err
		}); err != nil {
			s.log.Warn("install live state of a new sale", "sale", sl.ID, "err", err)
			s.wake()
		}
	}
	if err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.CreateSale(ctx, sl, buckets, install) }); err != nil {
		if surge.ErrorCode(err) == "" {
			if row, ok := s.createdAnyway(ctx, sl); ok {
				// The COMMIT's answer was lost, not the commit: the sale
				// is this very one, its live state (if installed) its
				// epoch 1's. A 503 asked for a retry that got 409.
				s.log.Warn("the answer to a sale's creation was lost, and PostgreSQL holds the sale", "sale", sl.ID, "err", err)
				s.remember(row.Sale, row.Buckets, row.Ever)
				s.announce(ctx, sl.ID)
				return nil
			}
		}
		if staged && !surge.HasCode(err, surge.CodeSaleExists) {
			// The commit failed (or its answer was lost): leave no state,
			// nor staging keys of an install that failed part-way, behind;
			// if the sale does exist, the leader builds it.
			// Through the breaker and within the call timeout, as every
			// Redis call: outside them it waited out Redis's own timeouts.
			if err := s.call(runToEnd(ctx), s.rcb, func(ctx context.Context) error { return s.live.Remove(ctx, layout) }); err != nil {
				s.log.Warn("remove live state of a sale not created", "sale", sl.ID, "err", err)
			}
		}
		return unavailable("creating the sale", err)
	}
	s.remember(sl, buckets, 0)
	s.announce(ctx, sl.ID)
	return nil
}

// createdAnyway tells whether PostgreSQL holds sl itself (the same
// creation time, name and stock), after its creation failed without
// PostgreSQL saying why: the connection dropped or the timeout cut it,
// maybe after the COMMIT was sent. A commit still on its way is not seen,
// and the creation stays answered as failed.
func (s *Store) createdAnyway(ctx context.Context, sl surge.Sale) (postgres.SaleRow, bool) {
	var row postgres.SaleRow
	err := s.call(context.WithoutCancel(ctx), s.pcb, func(ctx context.Context) (err error) {
		row, err = s.db.Sale(ctx, sl.ID)
		return err
	})
	return row, err == nil && row.Name == sl.Name && row.Stock == sl.Stock &&
		row.CreatedAt.Equal(sl.CreatedAt.UTC().Truncate(time.Microsecond))
}

// saleInfo is a sale and where its live state lives.
type saleInfo struct {
	surge.Sale
	layout redis.Layout
}

func (s *Store) remember(sl surge.Sale, buckets int, ever int64) {
	s.mu.Lock()
	s.sales[sl.ID] = saleInfo{Sale: sl, layout: redis.Layout{Sale: sl.ID, Buckets: max(buckets, 1)}}
	s.ever[sl.ID] = max(s.ever[sl.ID], ever)
	s.mu.Unlock()
}

// sawEver records PostgreSQL's count of units ever inserted into a sale.
func (s *Store) sawEver(saleID string, ever int64) {
	s.mu.Lock()
	s.ever[saleID] = max(s.ever[saleID], ever)
	s.mu.Unlock()
}

// everSeen is the largest count of units ever inserted into a sale this
// node has seen PostgreSQL report.
func (s *Store) everSeen(saleID string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ever[saleID]
}

// Sales implements surge.Store.
func (s *Store) Sales(ctx context.Context) ([]surge.Sale, error) {
	var rows []postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		rows, err = s.db.Sales(ctx)
		return err
	})
	if err != nil {
		return nil, unavailable("listing sales", err)
	}
	out := make([]surge.Sale, len(rows))
	for i, r := range rows {
		out[i] = r.Sale
		s.remember(r.Sale, r.Buckets, r.Ever)
	}
	s.keepOnly(rows) // archived sales go (archive.go)
	return out, nil
}

// sale returns a sale from memory, or from PostgreSQL the first time this
// node hears of it.
func (s *Store) sale(ctx context.Context, id string) (saleInfo, error) {
	s.mu.RLock()
	sl, ok := s.sales[id]
	s.mu.RUnlock()
	if ok {
		return sl, nil
	}
	var row postgres.SaleRow
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		row, err = s.db.Sale(ctx, id)
		return err
	})
	if err != nil {
		return saleInfo{}, unavailable("loading the sale", err)
	}
	s.remember(row.Sale, row.Buckets, row.Ever)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sales[id], nil
}
