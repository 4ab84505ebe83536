package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/logrepeat"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// expiryInterval is how often the expiry job releases the holds that ran
// out: a unit comes back at most this late.
const expiryInterval = time.Second

// expirer is the store's expiry job.
func (s *Store) expirer() {
	defer close(s.expiryDone)
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	// A failing disk fails every pass alike: its line once a
	// logrepeat.Every, as a failing purchase batch's, not once a second.
	fails := logrepeat.New(logrepeat.Every)
	failing := false
	for {
		select {
		case <-s.stopExpiry:
			return
		case <-t.C:
			_, err := s.Expire(context.Background(), s.opts.Now())
			switch {
			case err != nil:
				failing = true
				if n, ok := fails.Allow("expire"); ok {
					s.opts.Logger.Error("expire holds", "err", err, "suppressed", n)
				}
			case failing:
				failing = false
				s.opts.Logger.Info("expiry of holds succeeds again", "suppressed", fails.Done("expire"))
			}
		}
	}
}

// OnRelease implements surge.Releaser: fn hears of every sale whose
// expired holds gave units back, also those the job expired before fn was
// set (it runs from Open on).
func (s *Store) OnRelease(fn func(saleID string, expired int)) { s.rel.OnRelease(fn) }

// Expire moves every reserved order whose hold ended at or before now to
// expired, returning its units, and returns the orders it expired. The
// store's expiry job calls it every second on its clock; tests that
// disabled the job (Options.NoExpiry) call it with theirs. The OnRelease
// callback hears of each sale that got units back, before Expire returns.
func (s *Store) Expire(ctx context.Context, now time.Time) ([]surge.Order, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	s.mu.RLock()
	states := make([]*saleState, 0, len(s.sales))
	for _, st := range s.sales {
		states = append(states, st)
	}
	s.mu.RUnlock()
	var expired []surge.Order
	var errs []error
	for _, st := range states {
		n := 0
		// One chunk (a commit) at a time under the sale's lock, and its
		// units handed back (Heard) before the next: a pass of many
		// holds neither keeps its first units from buyers (the pipeline
		// answered sold_out meanwhile) nor holds the sale's purchases
		// for its whole length.
		for {
			got, err := s.expireChunk(st, now, &expired)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if got == 0 {
				break
			}
			n += got
			// After the unlock: the listener reads the remaining stock.
			s.rel.Heard(st.l.Sale().ID, got)
		}
		if n > 0 {
			s.opts.Logger.Info("holds expired", "sale", st.l.Sale().ID, "orders", n)
		}
	}
	return expired, errors.Join(errs...)
}

// expireChunk expires, in one commit under the sale's lock, up to
// MaxCommitRows of st's holds that ended at or before now, appending them
// to expired; it returns how many (0 when none was due, or the commit
// failed). Once none is due, it drops the keys past the window: the sweep
// of old keys rides on the expiry pass (memory holds live orders' keys
// and the window's, and disk the rest).
func (s *Store) expireChunk(st *saleState, now time.Time, expired *[]surge.Order) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	due := st.l.Due(now, s.opts.MaxCommitRows)
	if len(due) == 0 {
		st.l.Forget(now.Add(-s.opts.IdempotencyTTL))
		return 0, nil
	}
	ups := make([]update, len(due))
	for i, o := range due {
		ups[i] = update{id: o.ID, sale: o.SaleID, status: surge.OrderExpired, at: now}
	}
	if err := s.submit(&commit{updates: ups}); err != nil {
		st.l.Requeue(due)
		st.l.Forget(now.Add(-s.opts.IdempotencyTTL))
		return 0, err
	}
	for _, o := range due {
		st.l.Settle(o.ID, surge.OrderExpired)
		o.Status = surge.OrderExpired
		*expired = append(*expired, o)
	}
	return len(due), nil
}
