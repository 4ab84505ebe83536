package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// KeyTail is what a node's copy of a sale's idempotency keys
// (cluster/keycopy.go) reads to catch up: the sale's counts and its orders
// after a position, all from one snapshot.
type KeyTail struct {
	// Stock, Sold and Ever are the sale row's: units for sale, units of
	// live orders, units ever inserted.
	Stock, Sold, Ever int64
	// Seq is the largest order position read (after, if none); Units the
	// units of every order after after up to Seq, keyed or not.
	Seq, Units int64
	// Keyed is every order with a key after after, as first answered
	// (status reserved), in order.
	Keyed []surge.Order
}

// ErrKeyTailsBusy refuses a KeyTail, at once, while as many run as the
// pool spares them: the catch-up tries again later.
var ErrKeyTailsBusy = errors.New("postgres: as many key catch-ups as the pool spares are under way")

// KeyTail reads a sale's orders after position after (0: all of them)
// in one read-only snapshot. surge.ErrSaleNotFound if the sale is unknown
// or archived. At most a quarter of the pool (one at least) reads at
// once, and never the pool's last connection with the install locks and
// exports (DB.kept); one more is refused at once (ErrKeyTailsBusy): the
// commits need the rest.
func (d *DB) KeyTail(ctx context.Context, saleID string, after int64) (KeyTail, error) {
	release, ok := d.tryKept(d.tails)
	if !ok {
		return KeyTail{}, ErrKeyTailsBusy
	}
	defer release()
	var t KeyTail
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, d.pool, opts, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT stock, sold, ever FROM sales WHERE id = $1 AND archived_at IS NULL`,
			saleID).Scan(&t.Stock, &t.Sold, &t.Ever)
		if errors.Is(err, pgx.ErrNoRows) {
			return surge.ErrSaleNotFound
		}
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(seq), $2), COALESCE(sum(quantity), 0)
			FROM orders WHERE sale_id = $1 AND seq > $2`, saleID, after).Scan(&t.Seq, &t.Units); err != nil {
			return err
		}
		t.Keyed, err = collectOrders(tx.Query(ctx, `SELECT `+orderColumns+` FROM orders
			WHERE sale_id = $1 AND seq > $2 AND idem_key IS NOT NULL ORDER BY seq`, saleID, after))
		return err
	})
	if surge.ErrorCode(err) != "" {
		return KeyTail{}, err
	}
	if err != nil {
		return KeyTail{}, fmt.Errorf("postgres: key tail of sale %s: %w", saleID, err)
	}
	for i := range t.Keyed {
		t.Keyed[i].Status = surge.OrderReserved
	}
	return t, nil
}
