package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// The transactional outbox (migration 007, docs/events.md). The statements
// that change orders write their events in the same transaction: the
// reserved events of InsertOrders in the same batch (an implicit
// transaction), those of Settle and Expire in the same statement.

// reservedEventsSQL writes the reserved events of the orders a batch
// inserted. It runs in the batch's transaction after surge_insert_orders,
// so it finds the orders only when they were inserted (not fenced), and
// while the sale row is still locked, so their seqs follow the commit
// order of the sale's reservations.
const reservedEventsSQL = `INSERT INTO outbox (sale_id, order_id, event, at)
	SELECT sale_id, id, 'reserved', created_at FROM orders WHERE id = ANY($1) ORDER BY seq`

// outboxEventSQL is a data-modifying CTE's statement writing the events of
// the orders that the statement's CTE from changed, the event and its time
// given as SQL (parameters of the statement).
func outboxEventSQL(from, kind, at string) string {
	return `INSERT INTO outbox (sale_id, order_id, event, at) SELECT sale_id, id, ` + kind + `, ` + at + ` FROM ` + from
}

// PendingEvents returns up to limit events above after, lowest seq first,
// if the lease l is still held; none otherwise. A seq taken by a
// transaction still in flight may commit after a higher one was read: the
// relay finds its event when it reads from 0 again, and EventsPublished
// deletes by seq, so none is skipped.
func (d *DB) PendingEvents(ctx context.Context, l Lease, after int64, limit int) ([]surge.OrderEvent, error) {
	rows, err := d.pool.Query(ctx, `SELECT x.seq, x.event, x.at, COALESCE(x.ref, ''), o.id, o.sale_id, o.user_id, o.quantity,
		o.status, o.idem_key, o.created_at, o.expires_at
		FROM outbox x JOIN orders o ON o.id = x.order_id WHERE x.seq > $5 AND `+fence(2)+` ORDER BY x.seq LIMIT $1`,
		limit, l.Name, l.Holder, l.Token, after)
	if err != nil {
		return nil, fmt.Errorf("postgres: read outbox: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.OrderEvent, error) {
		var (
			e      surge.OrderEvent
			kind   string
			status string
			key    *string
			o      = &e.Order
		)
		if err := r.Scan(&e.Seq, &kind, &e.At, &e.Ref, &o.ID, &o.SaleID, &o.UserID, &o.Quantity, &status, &key,
			&o.CreatedAt, &o.ExpiresAt); err != nil {
			return e, err
		}
		e.Kind, e.At = surge.OrderEventKind(kind), e.At.UTC()
		o.Status = surge.OrderStatus(status)
		if e.Kind != surge.EventRefundDue {
			o.Status = surge.OrderStatus(kind) // the order as of the change
		}
		if key != nil {
			o.IdempotencyKey = *key
		}
		o.CreatedAt, o.ExpiresAt = o.CreatedAt.UTC(), o.ExpiresAt.UTC()
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read outbox: %w", err)
	}
	return evs, nil
}

// EventsPublished deletes the events by seq if the lease l is still held;
// ErrLeaseLost otherwise (another node publishes them again: NATS drops
// the repeats by id).
func (d *DB) EventsPublished(ctx context.Context, l Lease, events []surge.OrderEvent) error {
	seqs := make([]int64, len(events))
	for i, e := range events {
		seqs[i] = e.Seq
	}
	var held bool
	err := d.pool.QueryRow(ctx, `WITH l AS (SELECT `+fence(2)+` AS held),
		d AS (DELETE FROM outbox WHERE seq = ANY($1) AND (SELECT held FROM l))
		SELECT held FROM l`, seqs, l.Name, l.Holder, l.Token).Scan(&held)
	if err != nil {
		return fmt.Errorf("postgres: delete published events: %w", err)
	}
	if !held {
		return ErrLeaseLost
	}
	return nil
}

// OutboxBacklog counts the events waiting and finds the oldest one's time.
func (d *DB) OutboxBacklog(ctx context.Context) (int64, time.Time, error) {
	var (
		n      int64
		oldest *time.Time
	)
	err := d.pool.QueryRow(ctx, `SELECT count(*), (SELECT at FROM outbox ORDER BY seq LIMIT 1) FROM outbox`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: outbox backlog: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, oldest.UTC(), nil
}
