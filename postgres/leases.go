package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// Lease is a term of leadership for the once-only jobs.
type Lease struct {
	Name, Holder string
	Token        int64
}

// leaseHeld is the fence every leader write carries.
const leaseHeld = `EXISTS (SELECT 1 FROM leases WHERE name = $%d AND holder = $%d AND token = $%d AND expires_at > now())`

func fence(first int) string { return fmt.Sprintf(leaseHeld, first, first+1, first+2) }

// Expire moves up to limit reserved orders whose hold ended at or before
// now to expired, if the lease is still held, and returns them; with
// ErrCommitUnknown, those it may have moved (see endOrders).
func (d *DB) Expire(ctx context.Context, now time.Time, l Lease, limit int) ([]surge.Order, error) {
	return d.expire(ctx, now, l, limit, "")
}

// ExpireSale is Expire of the sale's orders only.
func (d *DB) ExpireSale(ctx context.Context, now time.Time, l Lease, sale string, limit int) ([]surge.Order, error) {
	return d.expire(ctx, now, l, limit, oneSale, sale)
}

// oneSale narrows expire to the sale of its sixth argument.
const oneSale = "AND sale_id = $6"

// DueSales returns the sales with reserved orders whose hold ended at or
// before now, the one due longest first.
func (d *DB) DueSales(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := d.pool.Query(ctx, dueSalesSQL, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: sales with due holds: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: sales with due holds: %w", err)
	}
	return out, nil
}

// dueSalesSQL finds the sales with due holds in orders_due (migration 013:
// the reserved orders by sale, then end of hold) without reading their
// due orders: it steps from one sale with reserved orders to the next (one
// descent of the index each) and reads each one's first due hold. Grouping
// the due orders read every one of them, each round: with a million due
// (holds that lapsed together across many sales, a leader back after an
// outage) that took longer than the call timeout, and no hold expired.
const dueSalesSQL = `WITH RECURSIVE held AS (
		(SELECT sale_id FROM orders WHERE status = 'reserved' ORDER BY sale_id LIMIT 1)
		UNION ALL
		SELECT (SELECT o.sale_id FROM orders o WHERE o.status = 'reserved' AND o.sale_id > held.sale_id
			ORDER BY o.sale_id LIMIT 1) FROM held WHERE held.sale_id IS NOT NULL)
	SELECT held.sale_id FROM held CROSS JOIN LATERAL (SELECT min(o.expires_at) AS due FROM orders o
		WHERE o.sale_id = held.sale_id AND o.status = 'reserved' AND o.expires_at <= $1) d
	WHERE d.due IS NOT NULL ORDER BY d.due, held.sale_id`

func (d *DB) expire(ctx context.Context, now time.Time, l Lease, limit int, where string, args ...any) ([]surge.Order, error) {
	out, err := d.endOrders(ctx, expireSQL(where), append([]any{now, limit, l.Name, l.Holder, l.Token}, args...)...)
	if err != nil {
		return out, fmt.Errorf("postgres: expire: %w", err)
	}
	return out, nil
}

// expireSQL is the statement of expire, the orders it looks at narrowed
// by where (ExpireSale: one sale's, which orders_due reads on their own).
func expireSQL(where string) string {
	return `WITH x AS (UPDATE orders SET status = 'expired', updated_at = $1
			WHERE id IN (SELECT id FROM orders WHERE status = 'reserved' AND expires_at <= $1 ` + where + `
				ORDER BY expires_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
			AND ` + fence(3) + ` RETURNING ` + orderColumns + `),
		s AS (UPDATE sales SET sold = sales.sold - d.q
			FROM (SELECT sale_id, sum(quantity) AS q FROM x GROUP BY sale_id) d WHERE sales.id = d.sale_id
			RETURNING sales.id AS sale_id),
		-- The events read s, so each takes its seq once its sale's row is
		-- locked, as a reservation's does (docs/events.md, Ordering).
		-- PostgreSQL runs the data-modifying CTEs nothing reads last
		-- listed first: without the join this insert ran before s.
		e AS (` + outboxEventSQL("x JOIN s USING (sale_id)", "'expired'", "$1::timestamptz") + `)
		SELECT ` + orderColumns + ` FROM x`
}

// Rebuild starts a new epoch of a sale's live state, if the lease is still
// held and the sale is still at epoch (the one the leader diagnosed it at),
// and returns the sale as the epoch starts, to read its truth from
// (Snapshot). The epoch bump waits for inserts in flight and fails every
// later insert of the old epoch, so every order that will ever exist from
// before it is committed when it commits. ErrEpochMoved if another change
// started a newer epoch meanwhile (a PATCH, another rebuild): its state,
// not the one diagnosed, is what Redis holds or will hold, and a bump now
// would only fence off the purchases decided against it. The caller holds
// the sale's install lock (TryLockInstall), so no install is under way.
func (d *DB) Rebuild(ctx context.Context, saleID string, epoch int64, l Lease) (SaleRow, error) {
	var row SaleRow
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) (err error) {
		// The epoch is checked under the row's lock (PostgreSQL evaluates
		// the WHERE again on a row another transaction changed meanwhile).
		row, err = scanSale(tx.QueryRow(ctx, `UPDATE sales SET epoch = epoch + 1, dirty = false
			WHERE id = $1 AND archived_at IS NULL AND epoch = $5 AND `+fence(2)+` RETURNING `+saleColumns,
			saleID, l.Name, l.Holder, l.Token, epoch))
		if errors.Is(err, pgx.ErrNoRows) {
			var now int64
			if err := tx.QueryRow(ctx, `SELECT epoch FROM sales WHERE id = $1 AND archived_at IS NULL`, saleID).Scan(&now); err == nil && now != epoch {
				return ErrEpochMoved
			}
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		return recount(ctx, tx, saleID)
	})
	if err != nil {
		if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrEpochMoved) {
			return SaleRow{}, err
		}
		return SaleRow{}, fmt.Errorf("postgres: rebuild sale %s: %w", saleID, err)
	}
	return row, nil
}

// recount sets the sale's sold count from its live orders, in the
// transaction that starts a new epoch: every insert and settle keeps it,
// and a new epoch sets it anew. One pass over the sale's orders inside
// PostgreSQL: the transaction holds the sale row, and no order is sent.
func recount(ctx context.Context, tx pgx.Tx, saleID string) error {
	_, err := tx.Exec(ctx, `UPDATE sales SET sold = (SELECT COALESCE(sum(quantity), 0) FROM orders
		WHERE sale_id = $1 AND status IN ('reserved', 'paid')) WHERE id = $1`, saleID)
	return err
}

// snapshotProgress is how many orders Snapshot reads between two calls of
// its progress.
const snapshotProgress = 256

// Snapshot reads the truth a new epoch's live state is built from, once
// the epoch is committed (row: the sale as it started, Rebuild's or
// UpdateSale's): every reserved and paid order, and every order with a
// key. No order of the sale commits between the two (the epoch fenced off
// the older state, and no state of the new one is in Redis before this
// read's install), so it reads every order there is; an order ended since
// is read as it is now, and one ended after the read is released by the
// install (cluster). One statement, outside the epoch's transaction: a
// sale's orders take a while to send and to read, and a transaction whose
// client still reads what PostgreSQL sent is idle in PostgreSQL's eyes,
// ended after IdleInTransactionTimeout. progress, if set, is called every
// snapshotProgress orders read.
func (d *DB) Snapshot(ctx context.Context, row SaleRow, progress func()) (surge.LiveState, error) {
	snap := surge.LiveState{Sale: row.Sale, Epoch: row.Epoch, Buckets: row.Buckets, Ever: row.Ever, Ended: row.EndedByChange()}
	rows, err := d.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = $1
		AND (status IN ('reserved', 'paid') OR idem_key IS NOT NULL) ORDER BY seq`, row.ID)
	if err != nil {
		return snap, fmt.Errorf("postgres: snapshot of sale %s: %w", row.ID, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return snap, fmt.Errorf("postgres: snapshot of sale %s: %w", row.ID, err)
		}
		if o.Status.Live() {
			snap.Live = append(snap.Live, o)
		}
		if o.IdempotencyKey != "" {
			first := o
			first.Status = surge.OrderReserved
			snap.Keyed = append(snap.Keyed, first)
		}
		if n++; progress != nil && n%snapshotProgress == 0 {
			progress()
		}
	}
	if err := rows.Err(); err != nil {
		return snap, fmt.Errorf("postgres: snapshot of sale %s: %w", row.ID, err)
	}
	return snap, nil
}

// ErrLeaseLost answers a leader write after its lease passed to another.
var ErrLeaseLost = errors.New("postgres: lease lost")

// ErrEpochMoved answers a rebuild of a sale that a newer epoch has
// replaced since the leader diagnosed it.
var ErrEpochMoved = errors.New("postgres: the sale's epoch moved on since it was diagnosed")

// Acquire takes or renews the lease name for holder for ttl; ok is false
// while another holder's lease is current. A new term gets a larger token.
//
// The write is a transaction of its own, not a single statement, because
// of a try the caller stops waiting for: its cancel can reach PostgreSQL
// before the statement does and be lost, and a lone statement then
// commits whenever PostgreSQL gets to it, even after the holder resigned
// (the lease would stay with a node that is gone for a whole time to
// live). Inside a transaction the write commits only when the caller
// sends COMMIT, which a caller that gave up never does: PostgreSQL rolls
// the transaction back when it finds the connection closed or a ROLLBACK.
func (d *DB) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	var token int64
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO leases (name, holder, token, expires_at)
		VALUES ($1, $2, 1, now() + $3::interval)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
			token = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now()
				THEN leases.token ELSE leases.token + 1 END
		WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
		RETURNING token`, name, holder, ttl.String()).Scan(&token)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	return Lease{Name: name, Holder: holder, Token: token}, true, nil
}

// Resign gives up holder's leases of names, those it holds, so another
// node may take them at once.
func (d *DB) Resign(ctx context.Context, holder string, names ...string) error {
	_, err := d.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = ANY($1) AND holder = $2 AND expires_at > now()`,
		names, holder)
	if err != nil {
		return fmt.Errorf("postgres: resign leases %v: %w", names, err)
	}
	return nil
}
