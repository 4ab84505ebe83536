package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// Archiving (migration 004): archived_at marks a sale taken out of
// service. Sales, Sale and Rebuild leave such rows alone, so no node loads
// it and the leader never rebuilds its live state; its orders stay.

// Archived is an archived sale and where its live state lived.
type Archived struct {
	surge.ArchivedSale
	Buckets int
}

// ArchiveSale archives a sale that has ended at now, or has yet to start,
// and holds no reserved order, and returns its final figures.
// surge.ErrSaleNotFound if it is unknown or archived already; a
// surge.CodeNotArchivable error otherwise.
// The epoch bump fences off any batch decided against the sale's live
// state before the archive, as a rebuild does.
func (d *DB) ArchiveSale(ctx context.Context, saleID string, now time.Time) (Archived, error) {
	var out Archived
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// The row lock orders the archive after every insert and settle
		// of the sale in flight (they all update the row).
		var (
			starts   time.Time
			ends     *time.Time
			archived *time.Time
		)
		err := tx.QueryRow(ctx, `SELECT starts_at, ends_at, archived_at FROM sales WHERE id = $1 FOR UPDATE`,
			saleID).Scan(&starts, &ends, &archived)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && archived != nil) {
			return surge.ErrSaleNotFound
		}
		if err != nil {
			return err
		}
		// As surge.Sale.Archivable: ended, or yet to start (called off).
		if !now.Before(starts) && (ends == nil || now.Before(*ends)) {
			return surge.Errorf(surge.CodeNotArchivable,
				"sale %s has not ended: only a sale past its ends_at, or one yet to start, can be archived", saleID)
		}
		// now was read before the wait for the row's lock: a sale yet to
		// start at now that holds an order has started and sold since, and
		// calling it off would take a live sale out of service.
		if now.Before(starts) {
			var started bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE sale_id = $1)`, saleID).Scan(&started); err != nil {
				return err
			}
			if started {
				return surge.Errorf(surge.CodeNotArchivable,
					"sale %s has started and holds orders: only a sale past its ends_at, or one yet to start, can be archived", saleID)
			}
		}
		var reserved int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'reserved'`,
			saleID).Scan(&reserved); err != nil {
			return err
		}
		if reserved > 0 {
			return surge.Errorf(surge.CodeNotArchivable,
				"sale %s still has %d reserved orders: archive it once they are paid, cancelled or expired", saleID, reserved)
		}
		at := now.UTC().Truncate(time.Millisecond)
		row, err := scanSale(extraRow{tx.QueryRow(ctx, `UPDATE sales SET archived_at = $2, archived_remaining = stock - sold,
			epoch = epoch + 1, dirty = false, live_left = true WHERE id = $1 RETURNING `+saleColumns+`, archived_remaining`, saleID, at),
			[]any{&out.Remaining}})
		if err != nil {
			return err
		}
		out.Sale, out.ArchivedAt, out.Buckets = row.Sale, at, row.Buckets
		return nil
	})
	if surge.ErrorCode(err) != "" {
		return Archived{}, err
	}
	if err != nil {
		return Archived{}, fmt.Errorf("postgres: archive sale %s: %w", saleID, err)
	}
	return out, nil
}

// ArchivedSales lists the archived sales, oldest first.
func (d *DB) ArchivedSales(ctx context.Context) ([]surge.ArchivedSale, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+saleColumns+`, archived_at, archived_remaining FROM sales
		WHERE archived_at IS NOT NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list archived sales: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.ArchivedSale, error) {
		var a surge.ArchivedSale
		row, err := scanSale(extraRow{r, []any{&a.ArchivedAt, &a.Remaining}})
		a.Sale, a.ArchivedAt = row.Sale, a.ArchivedAt.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list archived sales: %w", err)
	}
	return out, nil
}

// ArchivedOne returns the archived sale saleID; ok is false if it is
// unknown or not archived.
func (d *DB) ArchivedOne(ctx context.Context, saleID string) (a Archived, ok bool, err error) {
	row, err := scanSale(extraRow{d.pool.QueryRow(ctx, `SELECT `+saleColumns+`, archived_at, archived_remaining FROM sales
		WHERE id = $1 AND archived_at IS NOT NULL`, saleID), []any{&a.ArchivedAt, &a.Remaining}})
	if errors.Is(err, pgx.ErrNoRows) {
		return Archived{}, false, nil
	}
	if err != nil {
		return Archived{}, false, fmt.Errorf("postgres: archived sale %s: %w", saleID, err)
	}
	a.Sale, a.ArchivedAt, a.Buckets = row.Sale, a.ArchivedAt.UTC(), row.Buckets
	return a, true, nil
}

// Archived reports whether saleID names an archived sale.
func (d *DB) Archived(ctx context.Context, saleID string) (bool, error) {
	var archived bool
	err := d.pool.QueryRow(ctx, `SELECT archived_at IS NOT NULL FROM sales WHERE id = $1`, saleID).Scan(&archived)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: sale %s: %w", saleID, err)
	}
	return archived, nil
}

// ArchivedAmong returns which of ids name archived sales, with their
// buckets.
func (d *DB) ArchivedAmong(ctx context.Context, ids []string) (map[string]int, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, buckets FROM sales WHERE id = ANY($1) AND archived_at IS NOT NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: archived sales among %d: %w", len(ids), err)
	}
	out, err := saleBuckets(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archived sales among %d: %w", len(ids), err)
	}
	return out, nil
}

// LiveLeft lists, up to limit, the archived sales whose live state may
// still be in Redis (the archive could not remove it), with their buckets.
func (d *DB) LiveLeft(ctx context.Context, limit int) (map[string]int, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, buckets FROM sales WHERE live_left ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: archived sales with live state left: %w", err)
	}
	out, err := saleBuckets(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archived sales with live state left: %w", err)
	}
	return out, nil
}

// saleBuckets reads rows of (id, buckets) into a map of each sale's
// buckets.
func saleBuckets(rows pgx.Rows) (map[string]int, error) {
	out := map[string]int{}
	var (
		id      string
		buckets int
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &buckets}, func() error {
		out[id] = buckets
		return nil
	})
	return out, err
}

// LiveRemoved records that the live state of the archived sale saleID is
// no longer in Redis.
func (d *DB) LiveRemoved(ctx context.Context, saleID string) error {
	if _, err := d.pool.Exec(ctx, `UPDATE sales SET live_left = false WHERE id = $1 AND live_left`, saleID); err != nil {
		return fmt.Errorf("postgres: sale %s: record its live state removed: %w", saleID, err)
	}
	return nil
}

// LiveLeftAgain records that the live state of the archived sale saleID
// may be in Redis again (an install wrote it back after the archive
// removed it, and could not remove it), for the leader's round to remove.
func (d *DB) LiveLeftAgain(ctx context.Context, saleID string) error {
	if _, err := d.pool.Exec(ctx, `UPDATE sales SET live_left = true WHERE id = $1 AND archived_at IS NOT NULL`, saleID); err != nil {
		return fmt.Errorf("postgres: sale %s: record its live state left: %w", saleID, err)
	}
	return nil
}

// extraRow scans a row of saleColumns followed by more columns: scanSale
// fills the sale, extra the rest.
type extraRow struct {
	pgx.Row
	extra []any
}

func (r extraRow) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra...)...) }
