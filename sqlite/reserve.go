package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Reserve implements surge.Store. The batch is decided at clock's reading
// once the sale's lock is held: a batch waits for that lock behind the
// sale's cancels, payments, expiries and changes, each held across its
// commit, and a time read before the wait decided it against the sale as
// changed meanwhile but at an instant before the change (an end set to
// now let it reserve after the end was answered), and made its holds
// shorter than the sale's hold by the wait.
func (s *Store) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	st := s.sale(saleID)
	if st == nil {
		return nil, 0, surge.ErrSaleNotFound
	}
	// The engine validated these already; the store checks again because
	// it is the last guard of the invariants (a quantity below one would
	// add stock), and the check costs nanoseconds next to the commit. The
	// limit is Decide's, purchase by purchase (surge.CheckPurchase).
	for _, p := range batch {
		if err := surge.CheckPurchase(p); err != nil {
			return nil, 0, err
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Checked under the sale lock, which Close holds while it sets closed:
	// a batch of rejections must not be answered by a closed store either.
	if s.closed.Load() {
		return nil, 0, surge.ErrUnavailable
	}
	// A batch that found the sale before ArchiveSale took it away and
	// waited for the lock meanwhile must not reserve: the sale's row says
	// archived, and no job would ever settle the order.
	if st.archived {
		return nil, 0, surge.ErrSaleNotFound
	}
	now := clock()
	// A dormant sale holds no buyer's units: it may only refuse (ended)
	// or replay. If its window is open at now after all (the wall clock
	// stepped back past its end since the start), its orders are loaded
	// first, as a steering does, so that the per-user limit counts them.
	if st.l.IsDormant() && st.l.Sale().Window(now) != surge.CodeEnded {
		if err := s.wake(ctx, st); err != nil {
			return nil, st.l.Remaining(), err
		}
	}
	if err := s.findKeys(ctx, st, batch); err != nil {
		return nil, st.l.Remaining(), err
	}
	outs, t := st.l.Decide(batch, now, func() string { return s.ids.Next(now) })
	if len(t.Orders) > 0 {
		if err := s.submit(&commit{inserts: t.Orders}); err != nil {
			st.l.Rollback(t)
			return nil, st.l.Remaining(), err
		}
		st.l.Commit(t)
	}
	return outs, st.l.Remaining(), nil
}

// keyQuery finds a key's order on disk. A reserved order's key never
// leaves memory, so only the others are looked for: the partial index
// orders_settled_keys serves the query because it repeats the index's
// condition.
const keyQuery = `SELECT ` + orderColumns + ` FROM orders
	WHERE sale_id = ? AND user_id = ? AND idempotency_key = ? AND status <> 'reserved'
	ORDER BY seq LIMIT 1`

// findKeys looks on disk for the batch's keys that memory may have dropped
// (older than the window) and puts back those it finds, so that Decide
// answers them as replays: a key never buys twice, however old. The
// caller holds the sale's lock, so every commit of the sale is on disk.
func (s *Store) findKeys(ctx context.Context, st *saleState, batch []surge.Purchase) error {
	for _, p := range batch {
		if p.IdempotencyKey == "" {
			continue
		}
		if _, ks := st.l.LookupKey(p.UserID, p.IdempotencyKey); ks != surge.KeyMaybe {
			continue
		}
		row := s.r.QueryRowContext(ctx, keyQuery, st.l.Sale().ID, p.UserID, p.IdempotencyKey)
		o, err := scanOrder(row)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return s.unavailable(fmt.Errorf("sqlite: look up idempotency key: %w", err))
		}
		st.l.Recall(o)
	}
	return nil
}

// Remaining implements surge.Store.
func (s *Store) Remaining(ctx context.Context, saleID string) (int64, error) {
	if s.closed.Load() {
		return 0, surge.ErrUnavailable
	}
	st := s.sale(saleID)
	if st == nil {
		return 0, surge.ErrSaleNotFound
	}
	return st.l.Remaining(), nil
}

// LookupKey implements surge.Store.
func (s *Store) LookupKey(saleID, userID, key string) (surge.Order, surge.KeyState) {
	st := s.sale(saleID)
	if st == nil {
		return surge.Order{}, surge.KeyUnknown
	}
	return st.l.LookupKey(userID, key)
}
