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

const paymentColumns = `id, type, order_id, sale_id, amount_cents, currency, status, provider, created_at, recorded_at, settles`

func scanPayment(row pgx.Row) (surge.Payment, error) {
	var (
		p           surge.Payment
		typ, status string
		settles     *string
	)
	if err := row.Scan(&p.ID, &typ, &p.OrderID, &p.SaleID, &p.AmountCents, &p.Currency, &status, &p.Provider,
		&p.Created, &p.RecordedAt, &settles); err != nil {
		return surge.Payment{}, err
	}
	p.Type, p.Status = surge.PaymentType(typ), surge.PaymentStatus(status)
	if settles != nil {
		p.Settles = *settles
	}
	p.Created, p.RecordedAt = p.Created.UTC(), p.RecordedAt.UTC()
	return p, nil
}

// errReplay rolls back an event whose id another transaction recorded
// first (the same event delivered to two nodes at once), or that was
// recorded for another order: replay answers it.
var errReplay = errors.New("postgres: payment recorded by another transaction")

// RecordPayment implements surge.Payments in one transaction: the order's
// row lock orders it against Settle, Expire (which skips a locked order
// and takes it on its next run) and every other event of the order, so
// the same event delivered to two nodes is applied once and the other sees
// a replay. The order's move to paid and the order event of the payment
// (paid or refund_due, docs/events.md) commit with the payment row. A
// refund naming only its payment finds its order first, in a transaction
// of its own (refundOrder), and is kept for that payment if it has not
// come yet.
func (d *DB) RecordPayment(ctx context.Context, ev surge.PaymentEvent, now time.Time) (surge.PaymentResult, error) {
	if err := surge.CheckPaymentEvent(ev); err != nil {
		return surge.PaymentResult{}, err
	}
	var (
		r   surge.PaymentResult
		err error
	)
	if ev.OrderID == "" {
		// In a transaction of its own, which takes no order's lock while
		// it holds the payment's (lockPaymentSQL).
		err = d.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			ev.OrderID, err = refundOrder(ctx, tx, ev, now)
			return err
		})
		if err == nil && ev.OrderID == "" {
			// The payment is none of Surge's, or not yet: the refund is
			// kept for it (refundOrder).
			err = surge.ErrOrderNotFound
		}
	}
	if err == nil {
		err = d.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			r, err = recordPayment(ctx, tx, ev, now)
			return err
		})
		if errors.Is(err, ErrCommitUnknown) {
			// The payment as it was to be recorded, its order found: for
			// PaymentLanded.
			return r, fmt.Errorf("postgres: record payment %s: %w", ev.ID, err)
		}
	}
	if errors.Is(err, errReplay) {
		return d.replay(ctx, ev.ID)
	}
	if err != nil {
		if surge.ErrorCode(err) != "" {
			return surge.PaymentResult{}, err
		}
		return surge.PaymentResult{}, fmt.Errorf("postgres: record payment %s: %w", ev.ID, err)
	}
	return r, nil
}

// inTx runs f in a transaction, as pgx.BeginFunc, but a COMMIT that
// PostgreSQL did not answer (the connection lost, the call timeout) is
// ErrCommitUnknown: it may have landed, and the caller must not say that
// nothing was recorded.
func (d *DB) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback) {
			return err // PostgreSQL answered: rolled back
		}
		return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
	}
	return nil
}

// PaymentLanded tells whether p, a payment whose RecordPayment answered
// ErrCommitUnknown (with p as it was to be recorded), is recorded, and
// answers it as recorded if so. It waits for that transaction to end
// first: it held p's order's row lock while it committed, and a locking
// read waits for it. Replay is set unless the payment recorded is this
// very one (recorded at p's time): another delivery's, which the lost
// transaction found, and answered as a replay, or which came after it.
func (d *DB) PaymentLanded(ctx context.Context, p surge.Payment) (surge.PaymentResult, bool, error) {
	o, err := scanOrder(d.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR SHARE`, p.OrderID))
	if err != nil {
		return surge.PaymentResult{}, false, fmt.Errorf("postgres: the order %s of payment %s whose commit was lost: %w", p.OrderID, p.ID, err)
	}
	first, err := scanPayment(d.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, p.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return surge.PaymentResult{}, false, nil
	}
	if err != nil {
		return surge.PaymentResult{}, false, fmt.Errorf("postgres: payment %s whose commit was lost: %w", p.ID, err)
	}
	ours := first.OrderID == p.OrderID && first.RecordedAt.Equal(p.RecordedAt.Truncate(time.Microsecond))
	return surge.PaymentResult{Payment: first, Order: o, Replay: !ours}, true, nil
}

// lockPaymentSQL takes, until the transaction ends, the lock of a payment
// id ($1) that orders a refund naming only that payment (refundOrder)
// against the payment's own recording: either the refund finds the
// payment, or the payment finds the refund kept for it. Another id's lock
// of the same hash only waits a little longer.
const lockPaymentSQL = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`

// refundOrder finds the order of a refund naming only the payment it gives
// back (RefundOf): a payment's order never changes once recorded. A
// payment of another provider under that id answers surge.ErrRefundNotKept
// (that provider's payment of the id never comes). When no payment
// is recorded under it, it may yet come (providers do not deliver in
// order): the refund is kept in refunds_ahead, committed with tx, until
// that payment takes it (recordPayment), and none is answered; keeping it
// drops those kept longer than surge.RefundAheadKept first, so the table
// holds no more than that window's (refunds_ahead_by_age). A repeated
// event id is a replay whatever payment it names now (errReplay), as
// whatever order (recordPayment); the embedded store looks the id up
// first alike.
func refundOrder(ctx context.Context, tx pgx.Tx, ev surge.PaymentEvent, now time.Time) (string, error) {
	if _, err := tx.Exec(ctx, lockPaymentSQL, ev.RefundOf); err != nil {
		return "", err
	}
	var order, provider string
	err := tx.QueryRow(ctx, `SELECT order_id, provider FROM payments WHERE id = $1`, ev.RefundOf).Scan(&order, &provider)
	if err == nil && provider == ev.Provider {
		return order, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	var recorded bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1)`, ev.ID).Scan(&recorded); err != nil {
		return "", err
	}
	if recorded {
		return "", errReplay
	}
	if provider != "" {
		return "", surge.ErrRefundNotKept
	}
	// A bounded batch, skipping rows another transaction is dropping
	// (no wait, no deadlock between two of these): each refund kept
	// drops up to that many, so the table stays bounded all the same.
	if _, err := tx.Exec(ctx, `DELETE FROM refunds_ahead WHERE seq IN (SELECT seq FROM refunds_ahead
		WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		now.Add(-surge.RefundAheadKept), surge.RefundsAheadDropped); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO refunds_ahead (id, refund_of, provider, amount_cents, currency, created_at, recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.RefundOf, ev.Provider, ev.AmountCents, ev.Currency, ev.Created, now); err != nil {
		return "", err
	}
	return "", nil
}

func recordPayment(ctx context.Context, tx pgx.Tx, ev surge.PaymentEvent, now time.Time) (surge.PaymentResult, error) {
	o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, ev.OrderID))
	notFound := errors.Is(err, pgx.ErrNoRows)
	if err != nil && !notFound {
		return surge.PaymentResult{}, err
	}
	// Under the order's lock, this statement sees an event of the order
	// that another transaction committed while this one waited.
	first, err := scanPayment(tx.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, ev.ID))
	if err == nil {
		if notFound || first.OrderID != o.ID {
			// A repeated id is a replay whatever order it names now
			// (docs/payments.md), answered with the first's order.
			return surge.PaymentResult{}, errReplay
		}
		return surge.PaymentResult{Payment: first, Order: o, Replay: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return surge.PaymentResult{}, err
	}
	if notFound {
		return surge.PaymentResult{}, surge.ErrOrderNotFound
	}
	p := surge.Payment{PaymentEvent: ev, SaleID: o.SaleID, RecordedAt: now}
	switch ev.Type {
	case surge.PaymentSucceeded, surge.PaymentManual:
		var sale surge.Sale
		if err := tx.QueryRow(ctx, `SELECT price_cents, currency FROM sales WHERE id = $1`, o.SaleID).
			Scan(&sale.PriceCents, &sale.Currency); err != nil {
			return surge.PaymentResult{}, fmt.Errorf("the sale %s of order %s: %w", o.SaleID, o.ID, err)
		}
		if ev.Type == surge.PaymentSucceeded {
			// The refunds of this payment that came before it, naming only
			// it (kept by refundOrder): they are its order's now,
			// refund_unexpected unless they settle it (settleEarly); one
			// kept longer than surge.RefundAheadKept is dropped only: its
			// payment was not to come. The lock makes a refund of it
			// committing now wait for this transaction, and then find the
			// payment.
			if _, err := tx.Exec(ctx, lockPaymentSQL, ev.ID); err != nil {
				return surge.PaymentResult{}, err
			}
			if _, err := tx.Exec(ctx, `WITH ahead AS (DELETE FROM refunds_ahead WHERE refund_of = $1 AND provider = $2
				RETURNING seq, id, amount_cents, currency, created_at, recorded_at)
				INSERT INTO payments (`+paymentColumns+`, refund_of) SELECT id, $5, $3, $4, amount_cents, currency,
				'refund_unexpected', $2, created_at, recorded_at, NULL, $1 FROM ahead WHERE recorded_at >= $6
				ORDER BY seq ON CONFLICT (id) DO NOTHING`,
				ev.ID, ev.Provider, o.ID, o.SaleID, string(surge.RefundSucceeded), now.Add(-surge.RefundAheadKept)); err != nil {
				return surge.PaymentResult{}, err
			}
		}
		payable := o.Status == surge.OrderReserved && o.ExpiresAt.After(now)
		if ev.Type == surge.PaymentManual {
			if !payable {
				return surge.PaymentResult{}, surge.NotPayable(o, now)
			}
			p.AmountCents, p.Currency = surge.Due(&sale, &o)
		}
		p.Status = surge.Decide(p.PaymentEvent, &sale, &o, payable)
		if p.Status == surge.PaymentPaid {
			// The paid event commits with the order's move (docs/events.md).
			if _, err := tx.Exec(ctx, `WITH o AS (UPDATE orders SET status = 'paid', updated_at = $2 WHERE id = $1
				RETURNING sale_id, id) `+outboxEventSQL("o", "'paid'", "$2::timestamptz"), o.ID, now); err != nil {
				return surge.PaymentResult{}, err
			}
			o.Status = surge.OrderPaid
		}
		if p.Status == surge.PaymentRefundDue || p.Status == surge.PaymentAmountMismatch {
			// Its refund, or its refund's steps, may have come first
			// (providers do not deliver in order). Money of the wrong
			// amount is owed back as well: its refunds settle it, and it
			// keeps its status (its refunds after it do alike).
			settled, rest, err := settleEarly(ctx, tx, p)
			if err != nil {
				return surge.PaymentResult{}, err
			}
			if settled && rest == 0 && p.Status == surge.PaymentRefundDue {
				// Refunded already: no refund_due event asks for another.
				p.Status = surge.PaymentRefunded
			}
		}
		if p.Status == surge.PaymentRefundDue && p.AmountCents > 0 {
			// The order stays as it is; the money taken is the event.
			// The order's status as the payment found it rides along: a
			// later change may move the order on before the relay reads.
			// A payment of nothing (a free order's) took no money: no
			// event asks to refund it (docs/events.md).
			if _, err := tx.Exec(ctx, `INSERT INTO outbox (sale_id, order_id, event, at, ref, status)
				SELECT $1, $2, 'refund_due', $3, $4, $5 WHERE surge_events()`,
				o.SaleID, o.ID, now, p.ID, string(o.Status)); err != nil {
				return surge.PaymentResult{}, err
			}
		}
	case surge.PaymentFailed:
		p.Status = surge.PaymentFailedStatus
	case surge.RefundSucceeded:
		p.Status = surge.PaymentRefundUnexpected
		// The oldest payment owed back (refund_due, or amount_mismatch:
		// money of the wrong amount) still owed exactly this much, else
		// the oldest still owed more: a refund in steps settles it once
		// they add up to it (the order's row lock keeps its refunds in
		// line). A refund naming its payment (RefundOf) gives back that
		// one only, never a sibling of the same amount; one naming only
		// the order none the provider took after it. The embedded
		// store's is the same (sqlite's owedSQL). An
		// amount_mismatch keeps its status, and its webhook answer (422)
		// to a replay: its refunds say it was given back.
		var due string
		var rest int64
		err := tx.QueryRow(ctx, `SELECT id, owed - $3 FROM (
			SELECT d.seq, d.id, d.amount_cents - coalesce((SELECT sum(r.amount_cents) FROM payments r
				WHERE r.order_id = d.order_id AND r.settles = d.id AND r.status = 'refund'), 0) AS owed
			FROM payments d WHERE d.order_id = $1 AND d.status IN ('refund_due', 'amount_mismatch') AND upper(d.currency) = upper($2)
				AND ($4 = '' AND d.created_at <= $5 OR d.id = $4 AND d.provider = $6)) d
			WHERE owed = $3 OR (owed > $3 AND $3 > 0) ORDER BY owed = $3 DESC, seq LIMIT 1`,
			o.ID, p.Currency, p.AmountCents, p.RefundOf, p.Created, p.Provider).Scan(&due, &rest)
		switch {
		case err == nil:
			p.Status, p.Settles = surge.PaymentRefund, due
			if rest == 0 {
				if _, err := tx.Exec(ctx, `UPDATE payments SET status = 'refunded' WHERE id = $1 AND status = 'refund_due'`, due); err != nil {
					return surge.PaymentResult{}, err
				}
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return surge.PaymentResult{}, err
		}
	}
	var settles *string
	if p.Settles != "" {
		settles = &p.Settles
	}
	// A refund naming its payment keeps its name (refund_of): it is the
	// refund delivered first of that payment only (settleEarlySQL).
	var refundOf *string
	if p.RefundOf != "" {
		refundOf = &p.RefundOf
	}
	tag, err := tx.Exec(ctx, `INSERT INTO payments (`+paymentColumns+`, refund_of) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
		ON CONFLICT (id) DO NOTHING`, p.ID, string(p.Type), p.OrderID, p.SaleID, p.AmountCents, p.Currency,
		string(p.Status), p.Provider, p.Created, p.RecordedAt, settles, refundOf)
	if err != nil {
		return surge.PaymentResult{}, err
	}
	if tag.RowsAffected() == 0 {
		// The id was recorded for another order: not this event's to apply.
		return surge.PaymentResult{}, errReplay
	}
	return surge.PaymentResult{Payment: p, Order: o}, nil
}

// settleEarly settles p, a payment owed back, by the refunds of its order
// delivered before it (surge.SettleEarly), under the order's row lock: it
// lists the order's refund_unexpected refunds in p's currency naming p
// (refund_of, of its provider) or naming only the order and made no
// earlier than p (the provider cannot have given back money it took
// later), oldest first, and makes those that settle it refunds of it. It
// reports whether any did and what p is still owed. The embedded store's
// is the same (sqlite's earlyRefunds).
func settleEarly(ctx context.Context, tx pgx.Tx, p surge.Payment) (settled bool, rest int64, err error) {
	rows, err := tx.Query(ctx, `SELECT id, amount_cents, refund_of IS NOT NULL FROM payments
		WHERE order_id = $1 AND status = 'refund_unexpected' AND upper(currency) = upper($2)
		AND (refund_of IS NULL AND created_at >= $3 OR refund_of = $4 AND provider = $5) ORDER BY seq`,
		p.OrderID, p.Currency, p.Created, p.ID, p.Provider)
	if err != nil {
		return false, 0, err
	}
	early, err := pgx.CollectRows(rows, pgx.RowToStructByPos[surge.EarlyRefund])
	if err != nil {
		return false, 0, err
	}
	settle, rest := surge.SettleEarly(p.AmountCents, early)
	if len(settle) == 0 {
		return false, rest, nil
	}
	tag, err := tx.Exec(ctx, `UPDATE payments SET status = 'refund', settles = $1 WHERE id = ANY($2) AND status = 'refund_unexpected'`,
		p.ID, settle)
	if err != nil {
		return false, 0, err
	}
	if n := tag.RowsAffected(); n != int64(len(settle)) {
		return false, 0, fmt.Errorf("settled %d of the %d refunds of payment %s delivered first", n, len(settle), p.ID)
	}
	return true, rest, nil
}

// replay answers an event recorded before as it was first answered.
func (d *DB) replay(ctx context.Context, id string) (surge.PaymentResult, error) {
	first, err := scanPayment(d.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id))
	if err != nil {
		return surge.PaymentResult{}, fmt.Errorf("postgres: payment %s: %w", id, err)
	}
	o, err := d.Order(ctx, first.OrderID)
	if err != nil {
		return surge.PaymentResult{}, err
	}
	return surge.PaymentResult{Payment: first, Order: o, Replay: true}, nil
}

// querier is what the reads below need of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Payments streams every recorded payment, oldest first.
func (d *DB) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	return payments(ctx, d.pool, fn)
}

func payments(ctx context.Context, q querier, fn func(surge.Payment) error) error {
	rows, err := q.Query(ctx, `SELECT `+paymentColumns+` FROM payments ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("postgres: payments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return fmt.Errorf("postgres: scan payment: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: payments: %w", err)
	}
	return nil
}

// SaleCount is a sale's stock and the units the database counts as never
// sold: stock - sold (the guard's count of live units) while in service,
// the final figure once archived.
type SaleCount struct {
	ID               string
	Stock, Remaining int64
}

// SaleCounts lists every sale's SaleCount, archived ones too, oldest first.
func (d *DB) SaleCounts(ctx context.Context) ([]SaleCount, error) {
	return saleCounts(ctx, d.pool)
}

func saleCounts(ctx context.Context, q querier) ([]SaleCount, error) {
	rows, err := q.Query(ctx, `SELECT id, stock, CASE WHEN archived_at IS NULL THEN stock - sold
		ELSE archived_remaining END FROM sales ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: sale counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SaleCount])
	if err != nil {
		return nil, fmt.Errorf("postgres: sale counts: %w", err)
	}
	return out, nil
}

// View is a read-only view of the database as of one instant (one
// REPEATABLE READ transaction): surge reconcile reads payments, sold
// counts and orders through it, so a payment or a purchase a serving
// cluster commits while it reads shows in all of them or in none.
type View struct{ tx pgx.Tx }

// View opens a View; Close it.
func (d *DB) View(ctx context.Context) (*View, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: open a view: %w", err)
	}
	// The reader works between its reads (a settlement file to match): it
	// holds no lock a writer waits on, so no idle bound for it.
	if _, err := tx.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("postgres: open a view: %w", err)
	}
	return &View{tx: tx}, nil
}

// Close ends the view.
func (v *View) Close(ctx context.Context) error { return v.tx.Rollback(ctx) }

// Payments is DB.Payments as of the view.
func (v *View) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	return payments(ctx, v.tx, fn)
}

// SaleCounts is DB.SaleCounts as of the view.
func (v *View) SaleCounts(ctx context.Context) ([]SaleCount, error) { return saleCounts(ctx, v.tx) }

// Orders is DB.Orders as of the view.
func (v *View) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	return orders(ctx, v.tx, saleID, fn)
}
