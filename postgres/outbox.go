package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
)

// The transactional outbox (migration 007, docs/events.md). The statements
// that change orders write their events in the same transaction: the
// reserved events of InsertOrders in surge_insert_orders (migration 009),
// those of Settle and Expire in the same statement. They write them only
// while surge_events() holds: once a node that relays them has opened the
// database (Options.Events, migration 010).

// outboxEventSQL is a data-modifying CTE's statement writing the events of
// the orders that the statement's CTE from changed, the event and its time
// given as SQL (parameters of the statement).
func outboxEventSQL(from, kind, at string) string {
	return `INSERT INTO outbox (sale_id, order_id, event, at) SELECT sale_id, id, ` + kind + `, ` + at + ` FROM ` + from +
		` WHERE surge_events()`
}

// enableEventsSQL turns order events on for every node of the cluster.
const enableEventsSQL = `UPDATE order_events SET enabled = true WHERE NOT enabled`

// OutboxHorizon is how far a reader of the outbox may go: the seq up to
// which the outbox is final, no event below it still to commit. Without
// it a reader that reads on after the last event it saw skips an event
// committed late: transactions take their seqs as they insert, not as they
// commit, and the seqs of two transactions interleave, so a sale's event
// could go out after the sale's next ones. One reader holds it (the node
// with the outbox lease); the zero value is ready and final at 0.
type OutboxHorizon struct {
	mu    sync.Mutex
	final int64 // every seq up to final is committed or never will be
}

// horizonWait bounds how long a read waits for the transactions running
// when it started to end; past it, it reads up to the horizon it had.
const horizonWait = 2 * time.Second

// horizonSlack is what a read keeps of its caller's deadline for itself
// when it stops waiting for the horizon.
const horizonSlack = 500 * time.Millisecond

// PendingEvents returns up to limit events above after, lowest seq first,
// if the lease l is still held; none otherwise. It returns every event
// committed before the call, and none that a transaction still running
// could precede: it reads the last seq handed out, then a snapshot, and
// waits until every transaction running at that snapshot ended (its
// oldest running transaction id, xmin, reached the snapshot's next one,
// xmax), mostly no wait at all or a few milliseconds. Every writer of the
// outbox has its transaction id before it takes a seq (it has locked or
// changed its order first), so the seqs up to the one read are then final,
// and a reader may read on after the last event it saw without skipping
// one. The sequence must not cache values per session (CACHE 1, the
// default of migration 007's bigserial): a cached seq is handed out after
// higher ones were read. A writer transaction left open on the server for
// longer than horizonWait makes reads stop at the horizon they had until
// it ends.
func (d *DB) PendingEvents(ctx context.Context, l Lease, h *OutboxHorizon, after int64, limit int) ([]surge.OrderEvent, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := d.advance(ctx, h); err != nil {
		return nil, fmt.Errorf("postgres: read outbox: %w", err)
	}
	rows, err := d.pool.Query(ctx, `SELECT x.seq, x.event, x.at, COALESCE(x.ref, ''), o.id, o.sale_id, o.user_id, o.quantity,
		COALESCE(x.status, o.status), o.idem_key, o.created_at, o.expires_at
		FROM outbox x JOIN orders o ON o.id = x.order_id WHERE x.seq > $5 AND x.seq <= $6 AND `+fence(2)+`
		ORDER BY x.seq LIMIT $1`, limit, l.Name, l.Holder, l.Token, after, h.final)
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
		// The order as of the change: a refund_due row keeps the status
		// the payment found (rows from before migration 011 fall back to
		// the order's).
		o.Status = surge.OrderStatus(status)
		if e.Kind != surge.EventRefundDue {
			o.Status = surge.OrderStatus(kind)
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

// advance moves h's final seq to the last one handed out once the
// transactions that may hold seqs up to it have ended.
//
// A snapshot cannot tell that by itself: its xmax is one past the highest
// *completed* transaction id, and a transaction still running with an id
// above it is neither in its running list nor below its xmin. Ids and
// seqs are handed out in different orders (a writer takes its id at its
// first change and its seq later), so a writer with a low seq can run with
// the highest id while one with a later seq but a lower id commits. The
// reader therefore takes an id of its own after reading the last seq, one
// above every writer's that took a seq up to it, and waits until no
// transaction below that id runs (TestOutboxHorizonXidOrder).
func (d *DB) advance(ctx context.Context, h *OutboxHorizon) error {
	// One round trip: the last seq handed out, then the reader's own id.
	// Its commit writes a record; asynchronous, as nothing depends on it.
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SET LOCAL synchronous_commit = off`)
	b.Queue(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM outbox_seq_seq`)
	b.Queue(`SELECT pg_current_xact_id()::text::bigint`)
	b.Queue(`COMMIT`)
	res := d.pool.SendBatch(ctx, b)
	var last, mine, xmin int64
	_, err := res.Exec()
	if err == nil {
		_, err = res.Exec()
	}
	if err == nil {
		err = res.QueryRow().Scan(&last)
	}
	if err == nil {
		err = res.QueryRow().Scan(&mine)
	}
	if err == nil {
		_, err = res.Exec()
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The reader's transaction has ended, so the oldest running one is
	// below it exactly while a writer that may hold a seq up to last runs.
	if err := d.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		return err
	}
	deadline := time.Now().Add(horizonWait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-horizonSlack).Before(deadline) {
		// Stop waiting while the read itself still has time: a read past
		// the caller's deadline fails instead of stopping at the horizon.
		deadline = dl.Add(-horizonSlack)
	}
	for pause := 500 * time.Microsecond; xmin < mine; pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			return nil // a long transaction: the horizon stays
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		if err := d.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
			return err
		}
	}
	h.final = max(h.final, last)
	return nil
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
