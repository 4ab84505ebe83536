package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/ledger"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Loading at start. Each sale in service is loaded on its own, by one
// indexed scan of its orders. A sale that has ended and holds no reserved
// order decides nothing any more but replays, so it is left dormant: its
// figures come from one aggregate over its orders, and its orders stay on
// disk (Order, Orders and findKeys read them there), so thousands of past
// sales cost neither memory nor the time to load them. Steering one
// (UpdateSale, which may reopen it) loads it whole first (wake).

// load rebuilds every ledger from the database.
func (s *Store) load(ctx context.Context) error {
	sales, err := s.Sales(ctx)
	if err != nil {
		return err
	}
	ceilings, err := s.ceilings(ctx)
	if err != nil {
		return err
	}
	if err := s.orphans(ctx); err != nil {
		return err
	}
	now := s.opts.Now()
	restored := 0
	for _, sale := range sales {
		if err := checkSale(sale); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		l := ledger.New(sale)
		l.RaiseCeiling(ceilings[sale.ID])
		dormant := false
		if sale.Window(now) == surge.CodeEnded {
			if dormant, err = s.doze(ctx, l); err != nil {
				return err
			}
		}
		if !dormant {
			n, err := s.restore(ctx, l, now)
			if err != nil {
				return err
			}
			restored += n
		}
		if err := l.Verify(); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		s.sales[sale.ID] = &saleState{l: l}
	}
	if restored >= bigLoad {
		// The scan's garbage (a few strings per row) would otherwise stay
		// resident until the scavenger gets to it, minutes later; the
		// collection is cheap, the ledgers holding no pointers.
		debug.FreeOSMemory()
	}
	return nil
}

// bigLoad is the number of orders restored past which load hands the
// memory it freed back to the operating system at once.
const bigLoad = 100_000

// orphans refuses a database holding orders of a sale it does not have.
func (s *Store) orphans(ctx context.Context) error {
	var id, sale string
	err := s.w.QueryRowContext(ctx, `SELECT id, sale_id FROM orders WHERE sale_id NOT IN (SELECT id FROM sales) LIMIT 1`).Scan(&id, &sale)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: load orders: %w", err)
	}
	return fmt.Errorf("sqlite: %s: %w: order %s belongs to unknown sale %s", s.path, ErrDamaged, id, sale)
}

// doze makes l dormant if its sale holds no reserved order, from one
// aggregate of its orders (they are checked when a wake loads them).
func (s *Store) doze(ctx context.Context, l *ledger.Sale) (bool, error) {
	var reserved, sold int64
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status = 'reserved'),
		coalesce(sum(quantity) FILTER (WHERE status IN ('reserved','paid')), 0) FROM orders WHERE sale_id = ?`,
		l.Sale().ID).Scan(&reserved, &sold); err != nil {
		return false, fmt.Errorf("sqlite: load sale %s: %w", l.Sale().ID, err)
	}
	if reserved > 0 {
		return false, nil
	}
	l.Dormant(sold)
	return true, nil
}

// restore replays every order of l's sale into it. Only live orders' keys
// and the window's are kept; older ones are looked up on disk when used
// (findKeys).
func (s *Store) restore(ctx context.Context, l *ledger.Sale, now time.Time) (int, error) {
	sale := *l.Sale()
	// Against the largest limit the sale ever had: an order may predate a
	// lowered one.
	rules := sale
	rules.PerUserLimit = l.Ceiling()
	keysAfter := now.Add(-s.opts.IdempotencyTTL)
	rows, err := s.w.QueryContext(ctx, `SELECT id, user_id, quantity, status, idempotency_key, created_at, expires_at
		FROM orders WHERE sale_id = ? ORDER BY seq`, sale.ID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: load orders of %s: %w", sale.ID, err)
	}
	defer rows.Close()
	o := surge.Order{SaleID: sale.ID}
	var (
		status           string
		key              sql.NullString
		created, expires string
	)
	n := 0
	for rows.Next() {
		if err := rows.Scan(&o.ID, &o.UserID, &o.Quantity, &status, &key, &created, &expires); err != nil {
			return 0, fmt.Errorf("sqlite: scan order: %w", err)
		}
		o.Status, o.IdempotencyKey = surge.OrderStatus(status), key.String
		if o.CreatedAt, err = parseTime(created); err != nil {
			return 0, err
		}
		if o.ExpiresAt, err = parseTime(expires); err != nil {
			return 0, err
		}
		if err := checkOrder(&rules, o); err != nil {
			return 0, fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		l.Restore(o, keysAfter)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: load orders of %s: %w", sale.ID, err)
	}
	return n, nil
}

// wake loads a dormant sale whole before it is steered (a new end may
// reopen it). The caller holds the sale's lock.
func (s *Store) wake(ctx context.Context, st *saleState) error {
	if !st.l.IsDormant() {
		return nil
	}
	full := ledger.New(*st.l.Sale())
	full.RaiseCeiling(st.l.Ceiling())
	if _, err := s.restore(ctx, full, s.opts.Now()); err != nil {
		return s.unavailable(err)
	}
	if err := full.Verify(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	st.l.Adopt(full)
	return nil
}
