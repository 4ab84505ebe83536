package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surgehq/surge"
)

// ErrCommitUnknown: the COMMIT of a transaction that ended orders got no
// answer, so whether it landed is unknown; Landed tells, for the orders
// returned with it.
var ErrCommitUnknown = errors.New("postgres: the commit's answer was lost")

// endOrders runs q, a statement that ends orders and returns them, in a
// transaction of its own. A lone statement whose caller stopped waiting
// (the call timeout; its cancel ignored or lost) commits whenever
// PostgreSQL gets to it, with no one left to give the orders' units back
// nor to count their end. Inside a transaction it commits only when the
// caller sends COMMIT, which a caller that gave up never does. Only the
// COMMIT's own answer can still be lost: then the orders come back with
// ErrCommitUnknown, for Landed.
func (d *DB) endOrders(ctx context.Context, q string, args ...any) ([]surge.Order, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	out, err := collectOrders(tx.Query(ctx, q, args...))
	if err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		var pgErr *pgconn.PgError
		if len(out) == 0 || errors.As(err, &pgErr) {
			return nil, err // PostgreSQL answered: rolled back
		}
		return out, fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	return out, nil
}

// Landed returns which of ids a transaction that answered
// ErrCommitUnknown moved to status at now (the time it wrote). It waits
// for that transaction to end: it still holds the rows' locks while it
// commits, and a locking read waits for them, then reads the rows as the
// transaction left them.
func (d *DB) Landed(ctx context.Context, ids []string, status surge.OrderStatus, now time.Time) (map[string]bool, error) {
	// The test is on the output, not in WHERE: a condition there would
	// be checked on the row before the transaction's change, which fails
	// it, and skip the row without waiting.
	rows, err := d.pool.Query(ctx, `SELECT id, status = $2 AND updated_at = $3 FROM orders WHERE id = ANY($1) FOR SHARE`,
		ids, string(status), now)
	m := make(map[string]bool, len(ids))
	if err == nil {
		var id string
		var moved bool
		_, err = pgx.ForEachRow(rows, []any{&id, &moved}, func() error {
			if moved {
				m[id] = true
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: orders whose commit was lost: %w", err)
	}
	return m, nil
}
