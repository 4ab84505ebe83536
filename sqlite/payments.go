package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surgehq/surge"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// paymentsSchema is the record of payment events (surge.Payments). It is a
// table of its own, created if missing, so a database of an older version
// gains it at Open like archived_sales. created_at is the provider's time,
// recorded_at Surge's. refunds_ahead keeps the refunds naming only a
// payment not recorded yet (no order known), until that payment comes
// (refundsAhead) or for surge.RefundAheadKept (refunds_ahead_by_age finds
// those kept longer): they are no payments until then.
const paymentsSchema = `
CREATE TABLE IF NOT EXISTS payments (
	seq          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	type         TEXT NOT NULL,
	order_id     TEXT NOT NULL,
	sale_id      TEXT NOT NULL,
	amount_cents INTEGER NOT NULL,
	currency     TEXT NOT NULL,
	status       TEXT NOT NULL,
	provider     TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	recorded_at  TEXT NOT NULL,
	settles      TEXT, -- a refund: the refund_due payment it settled
	refund_of    TEXT  -- a refund naming its payment (RefundOf): that payment
) STRICT;
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (order_id, seq);
CREATE TABLE IF NOT EXISTS refunds_ahead (
	seq          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	refund_of    TEXT NOT NULL,
	provider     TEXT NOT NULL,
	amount_cents INTEGER NOT NULL,
	currency     TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	recorded_at  TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS refunds_ahead_by_payment ON refunds_ahead (refund_of, provider, seq);
CREATE INDEX IF NOT EXISTS refunds_ahead_by_age ON refunds_ahead (recorded_at);
`

const paymentColumns = `id, type, order_id, sale_id, amount_cents, currency, status, provider, created_at, recorded_at, settles`

// upgradePayments creates the payments and refunds_ahead tables in a
// database made before them, and gives one made before refund_of that
// column.
func upgradePayments(ctx context.Context, db schemaDB) error {
	if _, err := db.ExecContext(ctx, paymentsSchema); err != nil {
		return err
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('payments') WHERE name = 'refund_of'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		_, err := db.ExecContext(ctx, `ALTER TABLE payments ADD COLUMN refund_of TEXT`)
		return err
	}
	return nil
}

// Pay implements surge.Store: the operator's settlement, recorded as a
// manual payment of the order's full amount in the same commit.
func (s *Store) Pay(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	r, err := s.RecordPayment(ctx, surge.ManualPayment(orderID, now), now)
	if err != nil {
		return surge.Order{}, err
	}
	if r.Replay {
		return surge.Order{}, surge.NotPayable(r.Order, now) // paid already, by this very call
	}
	return r.Order, nil
}

// RecordPayment implements surge.Payments. Events are applied one at a
// time (payMu): they are rare next to purchases, and one at a time a
// replay is always seen as such. The order's sale lock orders the event
// against the expiry job, Cancel and other payments of the sale, and the
// payment row and the order's move to paid go in one group commit.
func (s *Store) RecordPayment(ctx context.Context, ev surge.PaymentEvent, now time.Time) (surge.PaymentResult, error) {
	if err := surge.CheckPaymentEvent(ev); err != nil {
		return surge.PaymentResult{}, err
	}
	if s.closed.Load() {
		return surge.PaymentResult{}, surge.ErrUnavailable
	}
	s.payMu.Lock()
	defer s.payMu.Unlock()
	if first, ok, err := s.payment(ctx, ev.ID); err != nil || ok {
		if err != nil {
			return surge.PaymentResult{}, err
		}
		o, err := s.Order(ctx, first.OrderID)
		return surge.PaymentResult{Payment: first, Order: o, Replay: true}, err
	}
	if ev.OrderID == "" {
		// A refund naming the payment it gives back (RefundOf), not its
		// order: a payment's order never changes once recorded.
		of, ok, err := s.payment(ctx, ev.RefundOf)
		if err != nil {
			return surge.PaymentResult{}, err
		}
		if !ok {
			// Not recorded yet, perhaps: providers do not deliver in
			// order. Kept aside for that payment (refundsAhead), and
			// answered as a refund of no payment of Surge's.
			if err := s.submit(&commit{ahead: []surge.Payment{{PaymentEvent: ev, RecordedAt: now}}}); err != nil {
				return surge.PaymentResult{}, err
			}
			return surge.PaymentResult{}, surge.ErrOrderNotFound
		}
		if of.Provider != ev.Provider {
			// The id is taken: that provider's payment never comes.
			return surge.PaymentResult{}, surge.ErrRefundNotKept
		}
		ev.OrderID = of.OrderID
	}
	o, err := s.Order(ctx, ev.OrderID)
	if err != nil {
		return surge.PaymentResult{}, err
	}
	p := surge.Payment{PaymentEvent: ev, SaleID: o.SaleID, RecordedAt: now}
	c := &commit{}
	var st *saleState
	switch ev.Type {
	case surge.PaymentSucceeded, surge.PaymentManual:
		if st = s.sale(o.SaleID); st != nil {
			st.mu.Lock()
			defer st.mu.Unlock()
		}
		sale, err := s.saleTerms(ctx, st, o.SaleID)
		if err != nil {
			return surge.PaymentResult{}, err
		}
		payable := false
		if st != nil {
			// A hold ends at ExpiresAt, not when Expire next runs.
			live, ok := st.l.Reserved(o.ID)
			payable = ok && live.ExpiresAt.After(now)
			if !ok {
				// o was read before the lock: a cancel or an expiry may
				// have ended the order since. Every change of its status
				// commits under this lock, so it reads true now, and the
				// refund_due event and the answer carry the order as the
				// payment found it.
				if o, err = s.Order(ctx, ev.OrderID); err != nil {
					return surge.PaymentResult{}, err
				}
			}
		}
		if ev.Type == surge.PaymentManual {
			if !payable {
				return surge.PaymentResult{}, surge.NotPayable(o, now)
			}
			p.AmountCents, p.Currency = surge.Due(&sale, &o)
		}
		p.Status = surge.Decide(p.PaymentEvent, &sale, &o, payable)
		// The refunds of this payment that came before it, naming only
		// it: they are the order's now, refund_unexpected unless they
		// settle it (below).
		if ev.Type == surge.PaymentSucceeded {
			if c.ahead, err = s.refundsAhead(ctx, p); err != nil {
				return surge.PaymentResult{}, err
			}
		}
		if p.Status == surge.PaymentPaid {
			c.updates = []update{{id: o.ID, sale: o.SaleID, status: surge.OrderPaid, at: now}}
		}
		if p.Status == surge.PaymentRefundDue && p.AmountCents > 0 {
			// A payment of nothing (a free order's) took no money: no
			// event asks to refund it (docs/events.md).
			c.events = []event{{sale: o.SaleID, order: o.ID, kind: surge.EventRefundDue, at: now, ref: p.ID, status: o.Status}}
		}
		if p.Status == surge.PaymentRefundDue || p.Status == surge.PaymentAmountMismatch {
			// Its refund, or its refund's steps, may have come first
			// (providers do not deliver in order). Money of the wrong
			// amount is owed back as well: its refunds settle it, and it
			// keeps its status (its refunds after it do alike).
			early, err := s.earlyRefunds(ctx, p)
			if err != nil {
				return surge.PaymentResult{}, err
			}
			placed := map[string]int{}
			for i, r := range c.ahead {
				if strings.EqualFold(r.Currency, p.Currency) {
					early = append(early, surge.EarlyRefund{ID: r.ID, AmountCents: r.AmountCents, Named: true})
					placed[r.ID] = i
				}
			}
			settle, rest := surge.SettleEarly(p.AmountCents, early)
			if len(settle) > 0 {
				c.settled = make(map[string]string, len(settle))
				for _, refund := range settle {
					if i, ok := placed[refund]; ok {
						c.ahead[i].Status, c.ahead[i].Settles = surge.PaymentRefund, p.ID
						continue
					}
					c.settled[refund] = p.ID
				}
				if rest == 0 && p.Status == surge.PaymentRefundDue {
					// Refunded already: no refund_due event asks for another.
					p.Status = surge.PaymentRefunded
					c.events = nil
				}
			}
		}
	case surge.PaymentFailed:
		p.Status = surge.PaymentFailedStatus
	case surge.RefundSucceeded:
		p.Status = surge.PaymentRefundUnexpected
		due, status, rest, ok, err := s.owed(ctx, p)
		if err != nil {
			return surge.PaymentResult{}, err
		}
		if ok {
			p.Status, p.Settles = surge.PaymentRefund, due
			// An amount_mismatch keeps its status, and its webhook answer
			// (422) to a replay: its refunds say it was given back.
			if rest == 0 && status == surge.PaymentRefundDue {
				c.refunded = []string{due}
			}
		}
	}
	c.payments = []surge.Payment{p}
	if err := s.submit(c); err != nil {
		return surge.PaymentResult{}, err
	}
	if len(c.updates) > 0 {
		st.l.Settle(o.ID, surge.OrderPaid)
		o.Status = surge.OrderPaid
	}
	return surge.PaymentResult{Payment: p, Order: o}, nil
}

// saleTerms returns the sale of an order: from memory while it is in
// service (st), from its row once archived.
func (s *Store) saleTerms(ctx context.Context, st *saleState, saleID string) (surge.Sale, error) {
	if st != nil {
		return *st.l.Sale(), nil
	}
	sales, err := s.scanSales(ctx, s.r, `WHERE id = ?`, saleID)
	if err != nil {
		return surge.Sale{}, err
	}
	if len(sales) == 0 {
		return surge.Sale{}, fmt.Errorf("sqlite: the sale %s of an order is missing", saleID)
	}
	return sales[0], nil
}

// payment reads a recorded payment by id.
func (s *Store) payment(ctx context.Context, id string) (surge.Payment, bool, error) {
	p, err := scanPayment(s.r.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return surge.Payment{}, false, nil
	}
	if err != nil {
		return surge.Payment{}, false, s.unavailable(fmt.Errorf("sqlite: payment %s: %w", id, err))
	}
	return p, true, nil
}

// refundsAhead takes the refunds kept aside for payment p (naming only
// it, delivered before it) as refunds of its order, refund_unexpected, in
// the order they came; the commit recording p records them and drops
// them from refunds_ahead. One whose id was recorded since is left out, and
// so is one kept longer than surge.RefundAheadKept: its payment was not
// to come (the commit drops it all the same).
func (s *Store) refundsAhead(ctx context.Context, p surge.Payment) (ahead []surge.Payment, err error) {
	defer func() {
		if err != nil {
			err = s.unavailable(fmt.Errorf("sqlite: the refunds of payment %s before it: %w", p.ID, err))
		}
	}()
	rows, err := s.r.QueryContext(ctx, `SELECT id, amount_cents, currency, created_at, recorded_at FROM refunds_ahead a
		WHERE refund_of = ? AND provider = ? AND recorded_at >= ? AND NOT EXISTS (SELECT 1 FROM payments WHERE id = a.id) ORDER BY seq`,
		p.ID, p.Provider, formatTime(p.RecordedAt.Add(-surge.RefundAheadKept)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r := surge.Payment{PaymentEvent: surge.PaymentEvent{Type: surge.RefundSucceeded, OrderID: p.OrderID, Provider: p.Provider, RefundOf: p.ID},
			SaleID: p.SaleID, Status: surge.PaymentRefundUnexpected}
		var created, recorded string
		if err := rows.Scan(&r.ID, &r.AmountCents, &r.Currency, &created, &recorded); err != nil {
			return nil, err
		}
		if r.Created, err = parseTime(created); err != nil {
			return nil, err
		}
		if r.RecordedAt, err = parseTime(recorded); err != nil {
			return nil, err
		}
		ahead = append(ahead, r)
	}
	return ahead, rows.Err()
}

// earlyRefunds lists the refunds of p's order delivered before it that
// may be its own (surge.SettleEarly), oldest first: refund_unexpected, in
// its currency, naming p (refund_of, of its provider) or naming only the
// order and made no earlier than p (created_at, text in time order: the
// provider cannot have given back money it took later). A refund naming
// another payment is that one's.
func (s *Store) earlyRefunds(ctx context.Context, p surge.Payment) (early []surge.EarlyRefund, err error) {
	defer func() {
		if err != nil {
			err = s.unavailable(fmt.Errorf("sqlite: the refunds of order %s before payment %s: %w", p.OrderID, p.ID, err))
		}
	}()
	rows, err := s.r.QueryContext(ctx, `SELECT id, amount_cents, refund_of IS NOT NULL FROM payments
		WHERE order_id = ? AND status = 'refund_unexpected' AND upper(currency) = upper(?)
		AND (refund_of IS NULL AND created_at >= ? OR refund_of = ? AND provider = ?) ORDER BY seq`,
		p.OrderID, p.Currency, formatTime(p.Created), p.ID, p.Provider)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r surge.EarlyRefund
		if err := rows.Scan(&r.ID, &r.AmountCents, &r.Named); err != nil {
			return nil, err
		}
		early = append(early, r)
	}
	return early, rows.Err()
}

// owedSQL finds the payment a refund (amount ?3) of order ?1 in currency
// ?2 settles: the oldest payment owed back (refund_due, or money of the
// wrong amount: amount_mismatch) still owed exactly that much, else the
// oldest still owed more (a refund in steps: each step a refund settling
// it, a refund_due refunded once they add up to it). A refund naming its
// payment (RefundOf, ?4, of provider ?6) gives back that one only, never
// a sibling of the same amount: else surge reconcile would ask to refund
// the payment the provider refunded and call the one still taken
// refunded. One naming only the order, made at ?5, gives back none the
// provider took after it. rest is what remains owed after this refund.
// PostgreSQL's is the same (postgres).
const owedSQL = `SELECT id, status, owed - ?3 FROM (
	SELECT d.seq, d.id, d.status, d.amount_cents - coalesce((SELECT sum(r.amount_cents) FROM payments r
		WHERE r.order_id = d.order_id AND r.settles = d.id AND r.status = 'refund'), 0) AS owed
	FROM payments d WHERE d.order_id = ?1 AND d.status IN ('refund_due', 'amount_mismatch') AND upper(d.currency) = upper(?2)
		AND (?4 = '' AND d.created_at <= ?5 OR d.id = ?4 AND d.provider = ?6))
	WHERE owed = ?3 OR (owed > ?3 AND ?3 > 0) ORDER BY owed = ?3 DESC, seq LIMIT 1`

// owed finds the payment the refund p settles (owedSQL).
func (s *Store) owed(ctx context.Context, p surge.Payment) (id string, status surge.PaymentStatus, rest int64, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, owedSQL, p.OrderID, p.Currency, p.AmountCents, p.RefundOf, formatTime(p.Created), p.Provider).
		Scan(&id, &status, &rest)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", 0, false, nil
	}
	if err != nil {
		return "", "", 0, false, s.unavailable(fmt.Errorf("sqlite: the payment refund %s settles: %w", p.ID, err))
	}
	return id, status, rest, true, nil
}

// Payments implements surge.Payments.
func (s *Store) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	if s.closed.Load() {
		return surge.ErrUnavailable
	}
	return streamPayments(ctx, s.r, fn)
}

func streamPayments(ctx context.Context, db source, fn func(surge.Payment) error) error {
	rows, err := db.QueryContext(ctx, `SELECT `+paymentColumns+` FROM payments ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("sqlite: list payments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: list payments: %w", err)
	}
	return nil
}

func scanPayment(sc scanner) (surge.Payment, error) {
	var (
		p                 surge.Payment
		typ, status       string
		created, recorded string
		settles           sql.NullString
	)
	if err := sc.Scan(&p.ID, &typ, &p.OrderID, &p.SaleID, &p.AmountCents, &p.Currency, &status, &p.Provider,
		&created, &recorded, &settles); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, err
		}
		return p, fmt.Errorf("sqlite: scan payment: %w", err)
	}
	p.Type, p.Status, p.Settles = surge.PaymentType(typ), surge.PaymentStatus(status), settles.String
	var err error
	if p.Created, err = parseTime(created); err != nil {
		return p, err
	}
	if p.RecordedAt, err = parseTime(recorded); err != nil {
		return p, err
	}
	return p, nil
}

// writePayments inserts a commit's payments and marks the refund_due
// payments its refunds settled, inside the group's transaction. Refunds
// ahead of their payment are kept (c.payments empty), or, with the
// payment, recorded as its order's and dropped from refunds_ahead.
// Keeping one drops those kept longer than surge.RefundAheadKept first, so
// the table holds no more than that window's.
func writePayments(ctx context.Context, tx *sql.Tx, c *commit) error {
	if len(c.payments) > 0 {
		// The refunds kept for the payment were recorded before it: they
		// are listed before it (Payments is oldest first, by seq), as
		// PostgreSQL's are.
		for _, r := range c.ahead {
			if err := insertPayment(ctx, tx, r); err != nil {
				return err
			}
		}
	}
	for _, p := range c.payments {
		if err := insertPayment(ctx, tx, p); err != nil {
			return err
		}
		if len(c.ahead) > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM refunds_ahead WHERE refund_of = ? AND provider = ?`, p.ID, p.Provider); err != nil {
				return fmt.Errorf("sqlite: drop the refunds kept for payment %s: %w", p.ID, err)
			}
		}
	}
	for _, r := range c.ahead {
		if len(c.payments) > 0 {
			continue // recorded above
		}
		// A bounded batch: the commit is a group's, purchases wait on it;
		// each refund kept drops up to that many, so the table stays
		// bounded all the same.
		if _, err := tx.ExecContext(ctx, `DELETE FROM refunds_ahead WHERE seq IN (
			SELECT seq FROM refunds_ahead WHERE recorded_at < ? ORDER BY recorded_at LIMIT ?)`,
			formatTime(r.RecordedAt.Add(-surge.RefundAheadKept)), surge.RefundsAheadDropped); err != nil {
			return fmt.Errorf("sqlite: drop the refunds kept past %v: %w", surge.RefundAheadKept, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO refunds_ahead (id, refund_of, provider, amount_cents, currency, created_at, recorded_at)
			VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING`, r.ID, r.RefundOf, r.Provider, r.AmountCents, r.Currency,
			formatTime(r.Created), formatTime(r.RecordedAt)); err != nil {
			return fmt.Errorf("sqlite: keep refund %s: %w", r.ID, err)
		}
	}
	for refund, due := range c.settled {
		res, err := tx.ExecContext(ctx, `UPDATE payments SET status = ?, settles = ? WHERE id = ? AND status = ?`,
			string(surge.PaymentRefund), due, refund, string(surge.PaymentRefundUnexpected))
		if err != nil {
			return fmt.Errorf("sqlite: settle refund %s: %w", refund, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("sqlite: refund %s was not refund_unexpected on disk", refund)
		}
	}
	for _, id := range c.refunded {
		res, err := tx.ExecContext(ctx, `UPDATE payments SET status = ? WHERE id = ? AND status = ?`,
			string(surge.PaymentRefunded), id, string(surge.PaymentRefundDue))
		if err != nil {
			return fmt.Errorf("sqlite: settle payment %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("sqlite: payment %s was not refund_due on disk", id)
		}
	}
	return nil
}

// insertPayment writes one payment row.
func insertPayment(ctx context.Context, tx *sql.Tx, p surge.Payment) error {
	var settles any
	if p.Settles != "" {
		settles = p.Settles
	}
	var refundOf any
	if p.RefundOf != "" {
		refundOf = p.RefundOf
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO payments (`+paymentColumns+`, refund_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		p.ID, string(p.Type), p.OrderID, p.SaleID, p.AmountCents, p.Currency, string(p.Status), p.Provider,
		formatTime(p.Created), formatTime(p.RecordedAt), settles, refundOf); err != nil {
		return fmt.Errorf("sqlite: insert payment %s: %w", p.ID, err)
	}
	return nil
}
