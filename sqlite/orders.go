package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Cancel implements surge.Store.
func (s *Store) Cancel(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderCancelled, surge.NotCancellable, now)
}

// settle moves one reserved order to status, durably, then in memory.
func (s *Store) settle(ctx context.Context, orderID string, status surge.OrderStatus, refuse func(surge.Order, time.Time) *surge.Error, now time.Time) (surge.Order, error) {
	o, err := s.Order(ctx, orderID)
	if err != nil {
		return surge.Order{}, err
	}
	st := s.sale(o.SaleID)
	if st == nil {
		// An archived sale's orders are all settled.
		return surge.Order{}, refuse(o, now)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	live, ok := st.l.Reserved(orderID)
	// A hold ends at ExpiresAt, not when Expire next runs: past it the
	// order is expired, and Expire returns its units.
	if !ok {
		// o was read before the lock: a cancel, a payment or the expiry
		// may have ended the order since, typically the first cancel of
		// a client retrying behind it. Every change of its status commits
		// under this lock, so the order read now says what ended it, as
		// the refusal must (docs/api.md); should the read fail, the
		// refusal stands, saying less.
		if cur, err := s.Order(ctx, orderID); err == nil {
			o = cur
		}
		return surge.Order{}, refuse(o, now)
	}
	if !live.ExpiresAt.After(now) {
		return surge.Order{}, refuse(live, now)
	}
	if err := s.submit(&commit{updates: []update{{id: orderID, sale: o.SaleID, status: status, at: now}}}); err != nil {
		return surge.Order{}, err
	}
	st.l.Settle(orderID, status)
	live.Status = status
	return live, nil
}

// Order implements surge.Store.
func (s *Store) Order(ctx context.Context, id string) (surge.Order, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id)
	o, err := scanOrder(row)
	if errors.Is(err, sql.ErrNoRows) {
		return surge.Order{}, surge.ErrOrderNotFound
	}
	return o, s.unavailable(err)
}

// readerConns is the reader pool's connections; maxExports, how many of
// them order exports may hold at once. An export holds its connection
// (its snapshot) for as long as its client takes to read, which a slow or
// stalled client makes as long as it likes; the other reads (an order's,
// a cancel's, a purchase's look-up of an old idempotency key under the
// sale's lock) are short but wait for a connection with no deadline of
// their own, so exports must never hold them all.
const (
	readerConns = 8
	maxExports  = readerConns / 2
)

var errExportsFull = &surge.Error{Code: surge.CodeOverloaded, RetryAfter: 10 * time.Second,
	Message: "too many order exports are under way; retry when one has ended"}

// Orders implements surge.Store. It reads a consistent snapshot while the
// writer goes on committing. At most maxExports run at once; one more is
// refused at once, overloaded.
func (s *Store) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if s.sale(saleID) == nil {
		if archived, err := s.archivedSale(ctx, saleID); err != nil || !archived {
			return cmp.Or(err, error(surge.ErrSaleNotFound))
		}
	}
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		return errExportsFull
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = ? ORDER BY seq`, saleID)
	if err != nil {
		return s.unavailable(fmt.Errorf("sqlite: export orders: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.unavailable(fmt.Errorf("sqlite: export orders: %w", err))
	}
	return nil
}
