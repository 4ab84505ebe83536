package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// UpdateSale implements surge.Steerer. PostgreSQL applies the change under
// the sale row's lock (postgres.UpdateSale); a change of the pause, stock,
// limit or end starts a new epoch there, which fences off every batch Redis
// decided against the old sale, and this node installs the new epoch's live
// state in Redis at once. Until it is installed (or, if Redis cannot be
// reached, until the leader rebuilds it, seeing the epochs differ),
// purchases answer 503 rather than be decided against the old sale. Every
// node hears of the change through the announcement.
func (s *Store) UpdateSale(ctx context.Context, id string, p surge.SalePatch, clock func() time.Time) (surge.Sale, error) {
	if s.closed.Load() {
		return surge.Sale{}, surge.ErrUnavailable
	}
	// Not the call timeout: the new epoch's snapshot reads every live order
	// of the sale, as a rebuild does. Not the caller's cancellation either:
	// a commit cut short would leave its outcome unknown here.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), steerTimeout)
	defer cancel()
	// The install lock (postgres.Installing), held from before the new
	// epoch commits until its state is in Redis: meanwhile the leader,
	// finding Redis at the older epoch, would otherwise start yet another
	// and fence off the purchases decided against this one right after
	// its answer. A node that dies frees it at once. Released before the
	// leader is woken, which would find it still held.
	release := func() {}
	if p.Steers() {
		lock, err := s.db.LockInstall(ctx, id)
		if err != nil {
			return surge.Sale{}, unavailable("changing the sale", err)
		}
		release = sync.OnceFunc(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CallTimeout)
			defer cancel()
			if err := lock.Release(ctx); err != nil {
				s.log.Warn("a change of a sale lost its install lock before its end; the leader may have rebuilt the sale over it", "sale", id, "err", err)
			}
		})
		defer release()
	}
	// The change's instant is read once the sale row's lock is held
	// (postgres.UpdateSale): an end "now" then comes after the changes
	// and the batches committed ahead of it.
	row, started, err := s.db.UpdateSale(ctx, id, p, clock)
	if surge.ErrorCode(err) != "" {
		return surge.Sale{}, err
	}
	if err != nil {
		release()
		return s.readBack(ctx, id, p, clock, err)
	}
	s.remember(row.Sale, row.Buckets, row.Ever)
	if !started && row.EndedByChange() {
		s.markEnded(ctx, row)
	}
	if started {
		if fn := s.installing.Load(); fn != nil {
			(*fn)()
		}
		snap, err := s.db.Snapshot(ctx, row, nil)
		if err == nil {
			_, err = s.install(ctx, snap, nil)
		}
		release()
		if err != nil {
			s.log.Warn("install the live state of a changed sale; the leader rebuilds it", "sale", id, "err", err)
			s.wake()
		}
	}
	s.announce(ctx, id)
	s.log.Info("sale changed", "sale", id, "epoch", row.Epoch, "paused", row.Paused, "stock", row.Stock)
	return row.Sale, nil
}

// readBack answers a change of a sale whose transaction failed without
// PostgreSQL saying why: the connection dropped or the timeout cut it,
// maybe after its COMMIT was sent, so it may have been applied. The sale
// is read again: if it holds every value p sets (they are absolute), the
// change is answered as made, and the leader installs its epoch's live
// state, which this node did not; otherwise the answer is a 503 that does
// not claim nothing changed (the commit may yet land, or a later change
// overwrote it), and retrying is safe.
func (s *Store) readBack(ctx context.Context, id string, p surge.SalePatch, clock func() time.Time, cause error) (surge.Sale, error) {
	var row postgres.SaleRow
	err := s.call(context.WithoutCancel(ctx), s.pcb, func(ctx context.Context) (err error) {
		row, err = s.db.Sale(ctx, id)
		return err
	})
	if err == nil && holds(row.Sale, p, clock()) {
		s.log.Warn("the answer to a change of a sale was lost, and PostgreSQL holds the change; the leader installs its live state",
			"sale", id, "epoch", row.Epoch, "err", cause)
		s.remember(row.Sale, row.Buckets, row.Ever)
		if !p.Steers() && row.EndedByChange() {
			s.markEnded(ctx, row)
		}
		s.wake()
		s.announce(ctx, id)
		return row.Sale, nil
	}
	return surge.Sale{}, fmt.Errorf("%w: changing the sale: %w", &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
		Message: "changing the sale failed, and it may have been applied (PostgreSQL's answer was lost); " +
			"retrying is safe: a PATCH sets absolute values"}, cause)
}

// markEnded marks the live state of row, a sale a change that started no
// epoch (a rename) made once it had ended, ended for every batch in Redis,
// as the install of a new epoch does (postgres.SaleRow.EndedByChange):
// left as it was, a node whose clock was behind the changing node's sold
// on until the next rebuild. Should Redis not take it (unreachable, or an
// install of an older row under way), the sale is rebuilt, which installs
// it so.
func (s *Store) markEnded(ctx context.Context, row postgres.SaleRow) {
	var marked bool
	err := s.call(ctx, s.rcb, func(ctx context.Context) (err error) {
		marked, err = s.live.MarkEnded(ctx, redis.Layout{Sale: row.ID, Buckets: max(row.Buckets, 1)}, row.Epoch)
		return err
	})
	if err != nil || !marked {
		s.log.Warn("mark an ended sale's live state ended after a change; the leader rebuilds it", "sale", row.ID, "err", err)
		s.markDirty(ctx, row.ID)
	}
}

// holds reports whether sl has every value p sets, as the change stores
// them: an end to the millisecond (surge.Sale.Apply), and for an end
// "now" an end at or before now.
func holds(sl surge.Sale, p surge.SalePatch, now time.Time) bool {
	return (p.Name == nil || *p.Name == sl.Name) &&
		(!p.EndNow || !sl.EndsAt.IsZero() && !sl.EndsAt.After(now)) &&
		(p.Stock == nil || *p.Stock == sl.Stock) &&
		(p.PerUserLimit == nil || *p.PerUserLimit == sl.PerUserLimit) &&
		(p.EndsAt == nil || p.EndsAt.Truncate(time.Millisecond).Equal(sl.EndsAt)) &&
		(p.HoldSeconds == nil || *p.HoldSeconds == sl.HoldSeconds) &&
		(p.Paused == nil || *p.Paused == sl.Paused)
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
