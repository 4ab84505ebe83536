package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/surgehq/surge"
)

// The transactional outbox (docs/events.md): every order change writes a
// row of outbox in the transaction of the change, so a change is
// published if and only if it committed. The relay (package outbox)
// reads the rows in seq order, publishes them and removes them.
//
// seq is AUTOINCREMENT so that it never goes back, even once the relay
// has emptied the table: the single writer hands out seqs in commit order
// and the relay removes a prefix, so the rows left are seqs min..max
// without a gap. A row holds the order's id, not its fields: those never
// change but its status, which is the event's; the relay joins them.
const outboxSchema = `
CREATE TABLE IF NOT EXISTS outbox (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	sale_id  TEXT NOT NULL,
	order_id TEXT NOT NULL,
	event    TEXT NOT NULL CHECK (` + eventCheck + `),
	at       TEXT NOT NULL,
	ref      TEXT, -- refund_due: the payment's id
	status   TEXT  -- refund_due: the order's status when the payment came
) STRICT;
`

// reservedEventsSQL copies the reserved events of the orders a commit
// inserted (seq from ? on) into the outbox.
const reservedEventsSQL = `INSERT INTO outbox (sale_id, order_id, event, at)
	SELECT sale_id, id, 'reserved', created_at FROM orders WHERE seq >= ? ORDER BY seq`

// event is one outbox row a commit writes besides its reservations'.
type event struct {
	sale, order string
	kind        surge.OrderEventKind
	at          time.Time
	ref         string
	// status is a refund_due's order as the payment left it: a later
	// change may move it on before the relay reads the row.
	status surge.OrderStatus
}

// eventChunk rows go in one multi-row INSERT (6 parameters each).
const eventChunk = 256

// eventStmt returns the prepared INSERT of n outbox rows, preparing it
// once. Only the writer goroutine calls it, before its transaction.
func (s *Store) eventStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if st := s.eventStmts[n]; st != nil {
		return st, nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO outbox (sale_id, order_id, event, at, ref, status) VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?)")
	}
	st, err := s.w.PrepareContext(ctx, sb.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare outbox insert: %w", err)
	}
	s.eventStmts[n] = st
	return st, nil
}

func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []event) error {
	args := s.args[:0]
	for len(events) > 0 {
		n := min(len(events), eventChunk)
		args = args[:0]
		for _, e := range events[:n] {
			var ref, status any
			if e.ref != "" {
				ref = e.ref
			}
			if e.status != "" {
				status = string(e.status)
			}
			args = append(args, e.sale, e.order, string(e.kind), formatTime(e.at), ref, status)
		}
		st, err := s.eventStmt(ctx, n)
		if err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlite: insert %d outbox events: %w", n, err)
		}
		events = events[n:]
	}
	clear(args)
	s.args = args
	return nil
}

// PendingEvents implements surge.Outbox.
func (s *Store) PendingEvents(ctx context.Context, after int64, limit int) ([]surge.OrderEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT x.seq, x.event, x.at, x.ref, o.id, o.sale_id, o.user_id, o.quantity, coalesce(x.status, o.status),
		o.idempotency_key, o.created_at, o.expires_at FROM outbox x JOIN orders o ON o.id = x.order_id WHERE x.seq > ? ORDER BY x.seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("sqlite: read outbox: %w", err))
	}
	defer rows.Close()
	var out []surge.OrderEvent
	for rows.Next() {
		var (
			e       surge.OrderEvent
			kind    string
			at      string
			ref     sql.NullString
			status  string
			key     sql.NullString
			c, x    string
			o       = &e.Order
			scanErr error
		)
		if err := rows.Scan(&e.Seq, &kind, &at, &ref, &o.ID, &o.SaleID, &o.UserID, &o.Quantity, &status, &key, &c, &x); err != nil {
			return nil, fmt.Errorf("sqlite: scan outbox: %w", err)
		}
		e.Kind, e.Ref, o.IdempotencyKey = surge.OrderEventKind(kind), ref.String, key.String
		// The order as of the change: later changes may have moved it
		// on. A refund_due row keeps the status the payment found (rows
		// written before it did fall back to the order's).
		o.Status = surge.OrderStatus(status)
		if e.Kind != surge.EventRefundDue {
			o.Status = surge.OrderStatus(kind)
		}
		if e.At, scanErr = parseTime(at); scanErr == nil {
			if o.CreatedAt, scanErr = parseTime(c); scanErr == nil {
				o.ExpiresAt, scanErr = parseTime(x)
			}
		}
		if scanErr != nil {
			return nil, scanErr
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.unavailable(fmt.Errorf("sqlite: read outbox: %w", err))
	}
	return out, nil
}

// EventsPublished implements surge.Outbox: one commit of the writer
// removes the outbox's rows up to the last event's seq. PendingEvents
// returns a prefix of the table (seqs have no gaps), so that is exactly
// the events given, and the ones published before them.
func (s *Store) EventsPublished(ctx context.Context, events []surge.OrderEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.submit(&commit{published: events[len(events)-1].Seq})
}

// backlogSQL reads the first and last seq waiting and the first one's
// time, each from an end of the key: SQLite reads min() or max() so only
// when it is its query's whole result (both in one query scanned every
// row, 0.5 s at 2 million events, once a second while NATS was down).
const backlogSQL = `SELECT lo, hi, (SELECT at FROM outbox WHERE seq = lo)
	FROM (SELECT (SELECT min(seq) FROM outbox) AS lo, (SELECT max(seq) FROM outbox) AS hi)`

// OutboxBacklog implements surge.Outbox. The rows left are seqs min..max
// without a gap (see outboxSchema): counting them costs two index reads
// however long the outbox has grown while NATS was down.
func (s *Store) OutboxBacklog(ctx context.Context) (int64, time.Time, error) {
	var (
		lo, hi sql.NullInt64
		at     sql.NullString
	)
	err := s.r.QueryRowContext(ctx, backlogSQL).Scan(&lo, &hi, &at)
	if err != nil {
		return 0, time.Time{}, s.unavailable(fmt.Errorf("sqlite: outbox backlog: %w", err))
	}
	if !lo.Valid {
		return 0, time.Time{}, nil
	}
	oldest, err := parseTime(at.String)
	return hi.Int64 - lo.Int64 + 1, oldest, err
}
