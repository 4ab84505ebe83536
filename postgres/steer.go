package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// UpdateSale applies p to a sale in service (migration 005) and returns
// the sale as changed. Under the sale row's lock, which orders it after
// every insert and settle in flight, it checks the change against the
// units live orders hold (surge.Sale.Apply). A change of what Redis
// decides on (p.Steers: the pause, stock, limit or end) also starts a new
// epoch, as a rebuild does, so that no batch decided against the old sale
// inserts afterwards (started; read the truth to build the new epoch's
// live state from with Snapshot). surge.ErrSaleNotFound if the sale is
// unknown or archived. The change's instant (an end "now", a pause's
// start, updated_at) is read from clock once the row's lock is held:
// read before, it came before the inserts that took the lock first, and
// an end "now" lay before orders committed ahead of it.
func (d *DB) UpdateSale(ctx context.Context, id string, p surge.SalePatch, clock func() time.Time) (row SaleRow, started bool, err error) {
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		cur, err := scanSale(tx.QueryRow(ctx, `SELECT `+saleColumns+` FROM sales
			WHERE id = $1 AND archived_at IS NULL FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return surge.ErrSaleNotFound
		}
		if err != nil {
			return err
		}
		now := clock().UTC().Truncate(time.Millisecond)
		p := p
		if p.EndNow {
			p.EndsAt, p.EndNow = &now, false
		}
		next, err := cur.Sale.Apply(p, cur.Sold, now)
		if err != nil {
			return err
		}
		bump := 0
		if p.Steers() {
			bump = 1
		}
		row, err = scanSale(tx.QueryRow(ctx, `UPDATE sales SET name = $2, stock = $3, per_user_limit = $4, ends_at = $5,
			hold_seconds = $6, paused = $7, updated_at = $8, epoch = epoch + $9, dirty = dirty AND $9 = 0,
			paused_at = $10, paused_for_ns = $11
			WHERE id = $1 RETURNING `+saleColumns,
			id, next.Name, next.Stock, next.PerUserLimit, nullTime(next.EndsAt), next.HoldSeconds, next.Paused, now, bump,
			nullTime(next.PausedAt), int64(next.PausedFor)))
		if err != nil || bump == 0 {
			return err
		}
		return recount(ctx, tx, id)
	})
	if surge.ErrorCode(err) != "" {
		return SaleRow{}, false, err
	}
	if err != nil {
		return SaleRow{}, false, fmt.Errorf("postgres: update sale %s: %w", id, err)
	}
	return row, p.Steers(), nil
}
