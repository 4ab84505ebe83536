package cluster

import (
	"context"
	"time"

	"github.com/surgehq/surge"
)

// UpdateSale implements surge.Steerer. PostgreSQL applies the change under
// the sale row's lock (postgres.UpdateSale); a change of the pause, stock,
// limit or end starts a new epoch there, which fences off every batch Redis
// decided against the old sale, and this node installs the new epoch's live
// state in Redis at once. Until it is installed (or, if Redis cannot be
// reached, until the leader rebuilds it, seeing the epochs differ),
// purchases answer 503 rather than be decided against the old sale. Every
// node hears of the change through the announcement.
func (s *Store) UpdateSale(ctx context.Context, id string, p surge.SalePatch, now time.Time) (surge.Sale, error) {
	if s.closed.Load() {
		return surge.Sale{}, surge.ErrUnavailable
	}
	// Not the call timeout: the new epoch's snapshot reads every live order
	// of the sale, as a rebuild does. Not the caller's cancellation either:
	// a commit cut short would leave its outcome unknown here.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), steerTimeout)
	defer cancel()
	row, snap, err := s.db.UpdateSale(ctx, id, p, now.UTC().Truncate(time.Millisecond))
	if err != nil {
		return surge.Sale{}, unavailable("changing the sale", err)
	}
	s.remember(row.Sale, row.Buckets, row.Ever)
	if snap != nil {
		if _, err := s.install(ctx, *snap); err != nil {
			s.log.Warn("install the live state of a changed sale; the leader rebuilds it", "sale", id, "err", err)
			s.wake()
		}
	}
	s.announce(ctx, id)
	s.log.Info("sale changed", "sale", id, "epoch", row.Epoch, "paused", row.Paused, "stock", row.Stock)
	return row.Sale, nil
}

// Sale implements surge.Steerer: the sale as PostgreSQL holds it now
// (another node may have changed it), remembered for this node's batches.
func (s *Store) Sale(ctx context.Context, id string) (surge.Sale, error) {
	var row surge.Sale
	err := s.call(ctx, s.pcb, func(ctx context.Context) error {
		r, err := s.db.Sale(ctx, id)
		if err == nil {
			s.remember(r.Sale, r.Buckets, r.Ever)
			row = r.Sale
		}
		return err
	})
	if err != nil {
		return surge.Sale{}, unavailable("reading the sale", err)
	}
	return row, nil
}

// steerTimeout bounds a change of a sale: its transaction and the install
// of the new epoch's live state. It ends well before the API server's
// write timeout (30 s, cmd/surge), so that a change PostgreSQL never
// answers is answered 503 with Retry-After; at 30 s the connection was
// closed without an answer instead.
const steerTimeout = 20 * time.Second

var _ surge.Steerer = (*Store)(nil)
