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

// EventsOn reports whether the cluster writes order events (migration
// 010): a node that relays them turned them on.
func (d *DB) EventsOn(ctx context.Context) (bool, error) {
	var on bool
	if err := d.pool.QueryRow(ctx, `SELECT surge_events()`).Scan(&on); err != nil {
		return false, fmt.Errorf("postgres: are order events on: %w", err)
	}
	return on, nil
}

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

// writersSQL lists the transactions (virtual ids, as a transaction may
// have no id yet) that hold or wait for a write lock on this schema's
// outbox, but the caller's own (a prepared transaction has no pid).
const writersSQL = `SELECT COALESCE(array_agg(virtualtransaction), '{}') FROM pg_locks
	WHERE locktype = 'relation' AND mode = 'RowExclusiveLock'
	AND pid IS DISTINCT FROM pg_backend_pid()
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND relation = 'outbox'::regclass`

// PendingEvents returns up to limit events above after, lowest seq first,
// if the lease l is still held; none otherwise. It returns every event
// committed before the call, and none that a transaction still running
// could precede: it reads the last seq handed out, then which
// transactions hold a write lock on the outbox, and waits until those
// ended, mostly no wait at all or a few milliseconds. Every writer of the
// outbox locks it before it takes a seq (an INSERT locks its table before
// it runs, and keeps the lock to its transaction's end), so the seqs up to
// the one read are then final, and a reader may read on after the last
// event it saw without skipping one. The sequence must not cache values
// per session (CACHE 1, the default of migration 007's bigserial): a
// cached seq is handed out after higher ones were read. A writer
// transaction of this outbox left open for longer than horizonWait makes
// reads stop at the horizon they had until it ends; transactions that do
// not write this outbox (another schema's, another database's, an
// application's sharing the server) hold no read back.
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
// Those are the writers of the outbox that run when the last seq is read:
// a writer locks the outbox table (RowExclusiveLock, to its transaction's
// end) before it takes its seq, so one with a seq up to the last read
// holds that lock when the locks are read after it, or has ended. Waiting
// for them alone, not for every transaction older than the read as a
// snapshot's xmin would, keeps a write open elsewhere on the server
// (another schema's cluster, another database) from stopping the relay.
// Transaction ids are no bound here: a writer may take its id first and its
// seq last (TestOutboxHorizonXidOrder), and a lock does not care.
func (d *DB) advance(ctx context.Context, h *OutboxHorizon) error {
	b := &pgx.Batch{}
	queueAdvance(b, h.final)
	res := d.pool.SendBatch(ctx, b)
	var last int64
	var writers []string
	err := res.QueryRow().Scan(&last)
	if err == nil {
		err = res.QueryRow().Scan(&writers)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(horizonWait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-horizonSlack).Before(deadline) {
		// Stop waiting while the read itself still has time: a read past
		// the caller's deadline fails instead of stopping at the horizon.
		deadline = dl.Add(-horizonSlack)
	}
	for pause := 500 * time.Microsecond; len(writers) > 0; pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			return nil // a long transaction: the horizon stays
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		if err := d.pool.QueryRow(ctx, writersSQL+` AND virtualtransaction = ANY($1)`, writers).Scan(&writers); err != nil {
			return err
		}
	}
	h.final = max(h.final, last)
	return nil
}

// queueAdvance queues advance's reads, in one round trip, the statements
// run in order: the last seq handed out, then the outbox's writers
// (relation oids are per database), which are read only if a seq past
// final was handed out by then: otherwise the horizon cannot move. The
// lock table is the server's whole (every session's locks, copied with
// every partition of the lock manager held), and a relay with nothing to
// publish reads every 20 ms: with 30 sessions holding 100 locks each, one
// read cost 1.3 ms of PostgreSQL's CPU, with 60 such 4-5.5 ms.
func queueAdvance(b *pgx.Batch, final int64) {
	b.Queue(lastSeqSQL)
	// The condition is a one-time filter: false, the lock table is never
	// read.
	b.Queue(writersSQL+` AND (`+lastSeqSQL+`) > $1`, final)
}

// lastSeqSQL reads the last seq handed out.
const lastSeqSQL = `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM outbox_seq_seq`

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

// backlogSQL reads how many events wait, and the oldest one's time, from
// the ends of the primary key: every node with a relay reads it every
// second, and count(*) scanned the whole outbox, which a NATS outage grows
// by a row per change (0.4 s of PostgreSQL's CPU per read at 2 million).
// The rows left are the seqs from the first to the last but those of
// transactions that rolled back after taking one (a lost connection) and
// those a relay removed out of order (a batch whose removal failed, kept
// for the next round): both rare, and counted only until the relay has
// passed them.
const backlogSQL = `SELECT COALESCE(max(seq) - min(seq) + 1, 0), (SELECT at FROM outbox ORDER BY seq LIMIT 1) FROM outbox`

// OutboxBacklog reports how many events wait (backlogSQL) and the oldest
// one's time.
func (d *DB) OutboxBacklog(ctx context.Context) (int64, time.Time, error) {
	var (
		n      int64
		oldest *time.Time
	)
	err := d.pool.QueryRow(ctx, backlogSQL).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: outbox backlog: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, oldest.UTC(), nil
}
