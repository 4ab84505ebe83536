package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surgehq/surge"
)

// InsertOrders commits a batch's new orders in one statement, fenced by
// epoch: ErrFenced, and nothing written, if the sale's live state was
// rebuilt since the batch was decided; ErrRefused, and nothing written, if
// the batch would oversell the sale, put a buyer over the limit or give a
// key a second order (surge_insert_orders, migration 003). ever is the
// sale's units ever inserted after the batch (0 without orders). In the
// same round trip (and transaction) it reports which of confirm (orders a
// replay answers with) are not in the table.
func (d *DB) InsertOrders(ctx context.Context, saleID string, epoch int64, orders []surge.Order, confirm []string) (ever int64, missing []string, err error) {
	b := &pgx.Batch{}
	if len(orders) > 0 {
		queueInsert(b, saleID, epoch, orders)
	}
	if len(confirm) > 0 {
		b.Queue(existingSQL, confirm)
	}
	if b.Len() == 0 {
		return 0, nil, nil
	}
	// Acquired apart from the batch (as pool.SendBatch does inside), so
	// that a pool with no connection free is told from a batch sent.
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	defer conn.Release()
	res := conn.SendBatch(ctx, b)
	defer res.Close()
	if len(orders) > 0 {
		var after *int64
		if err := res.QueryRow().Scan(&after); err != nil {
			if refused(err) {
				return 0, nil, fmt.Errorf("%w: %w", ErrRefused, err)
			}
			return 0, nil, fmt.Errorf("postgres: insert %d orders of sale %s: %w", len(orders), saleID, err)
		}
		if after == nil {
			return 0, nil, ErrFenced
		}
		ever = *after
	}
	if len(confirm) > 0 {
		rows, err := res.Query()
		have, err := idSet(rows, err)
		if err != nil {
			return 0, nil, fmt.Errorf("postgres: confirm replays: %w", err)
		}
		for _, id := range confirm {
			if !have[id] {
				missing = append(missing, id)
			}
		}
	}
	return ever, missing, res.Close()
}

// ErrNotSent answers an InsertOrders that got no connection of the pool
// (all busy until ctx ended, or none could be made): no statement of it
// was sent, so nothing of the batch can ever be committed.
var ErrNotSent = errors.New("postgres: no connection of the pool for the batch; nothing was sent")

// insertJoinedSQL is surge_insert_orders with its text columns sent as one
// string each, the values separated by sep, and the times of a batch sent
// once: pgx encodes a text[] or timestamptz[] argument by boxing every
// element, which was about a third of a node's allocations per purchase
// (docs/benchmarks.md, issue 14); string_to_array and array_fill cost
// PostgreSQL little. An empty key travels as noKey (string_to_array makes
// an empty string an empty array, not one empty element) and arrives as
// NULL, which the function stores as it does ”.
const insertJoinedSQL = `SELECT surge_insert_orders($1, $2, string_to_array($3, E'\n'), string_to_array($4, E'\n'), $5,
	string_to_array($6, E'\n', E'\t'), array_fill($7::timestamptz, ARRAY[$9::int]), array_fill($8::timestamptz, ARRAY[$9::int]))`

const (
	sep   = '\n'
	noKey = "\t"
)

// queueInsert queues surge_insert_orders for orders: as insertJoinedSQL
// when it can carry them (every id, user id and key free of sep and noKey,
// as validation makes them; one creation and expiry time for all, as a
// batch has), else with one array per column.
func queueInsert(b *pgx.Batch, saleID string, epoch int64, orders []surge.Order) {
	n := len(orders)
	qty := make([]int64, n)
	joinable := true
	size := 0
	for i := range orders {
		o := &orders[i]
		qty[i] = o.Quantity
		size += len(o.ID) + len(o.UserID) + len(o.IdempotencyKey) + 3
		if o.ID == "" || o.UserID == "" || !o.CreatedAt.Equal(orders[0].CreatedAt) || !o.ExpiresAt.Equal(orders[0].ExpiresAt) ||
			strings.ContainsAny(o.ID, "\n\t") || strings.ContainsAny(o.UserID, "\n\t") || strings.ContainsAny(o.IdempotencyKey, "\n\t") {
			joinable = false
		}
	}
	if joinable {
		var buf strings.Builder
		buf.Grow(size)
		// One allocation for the three columns: buf never grows past
		// size, so the strings taken from it stay as written.
		column := func(f func(o *surge.Order) string) string {
			start := buf.Len()
			for i := range orders {
				if i > 0 {
					buf.WriteByte(sep)
				}
				if v := f(&orders[i]); v != "" {
					buf.WriteString(v)
				} else {
					buf.WriteString(noKey) // only keys are ever empty here
				}
			}
			return buf.String()[start:]
		}
		ids := column(func(o *surge.Order) string { return o.ID })
		users := column(func(o *surge.Order) string { return o.UserID })
		keys := column(func(o *surge.Order) string { return o.IdempotencyKey })
		b.Queue(insertJoinedSQL, saleID, epoch, ids, users, qty, keys, orders[0].CreatedAt, orders[0].ExpiresAt, n)
		return
	}
	ids, users, keys := make([]string, n), make([]string, n), make([]string, n)
	created, expires := make([]time.Time, n), make([]time.Time, n)
	for i, o := range orders {
		ids[i], users[i], keys[i] = o.ID, o.UserID, o.IdempotencyKey
		created[i], expires[i] = o.CreatedAt, o.ExpiresAt
	}
	b.Queue(`SELECT surge_insert_orders($1, $2, $3, $4, $5, $6, $7, $8)`,
		saleID, epoch, ids, users, qty, keys, created, expires)
}

// refused tells a guarantee's refusal (surge_insert_orders's own codes,
// or a key's second order) from a failure.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "SU001" || pgErr.Code == "SU002" ||
		(pgErr.Code == "23505" && pgErr.ConstraintName == "orders_idem")
}

const orderColumns = `id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at`

func scanOrder(row pgx.Row) (surge.Order, error) {
	var (
		o      surge.Order
		status string
		key    *string
	)
	if err := row.Scan(&o.ID, &o.SaleID, &o.UserID, &o.Quantity, &status, &key, &o.CreatedAt, &o.ExpiresAt); err != nil {
		return surge.Order{}, err
	}
	o.Status = surge.OrderStatus(status)
	if key != nil {
		o.IdempotencyKey = *key
	}
	o.CreatedAt, o.ExpiresAt = o.CreatedAt.UTC(), o.ExpiresAt.UTC()
	return o, nil
}

// collectOrders reads the orders a query returned, taking the query's
// error too (collectOrders(q.Query(…))).
func collectOrders(rows pgx.Rows, err error) ([]surge.Order, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (surge.Order, error) { return scanOrder(r) })
}

// Order fetches one order; surge.ErrOrderNotFound if unknown.
func (d *DB) Order(ctx context.Context, id string) (surge.Order, error) {
	o, err := scanOrder(d.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return surge.Order{}, surge.ErrOrderNotFound
	}
	if err != nil {
		return surge.Order{}, fmt.Errorf("postgres: order %s: %w", id, err)
	}
	return o, nil
}

// Orders streams a sale's orders in creation order. An export keeps its
// connection (its snapshot) for as long as fn, its reader, takes: hours
// for a large sale read slowly. At most a quarter of the pool (one at
// least) exports at once, so that exports never leave purchases, cancels
// and the leader's jobs without a connection; one more is refused at
// once, overloaded, as the embedded store refuses it.
func (d *DB) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	release, ok := d.tryKept(d.exports)
	if !ok {
		return ErrExportsFull // or install locks keep all the pool can spare
	}
	defer release()
	return orders(ctx, d.pool, saleID, fn)
}

// tryKept takes a slot of kind (the exports' or the key catch-ups' bound)
// and one of kept, the connections all such holders may keep, or neither,
// at once: release gives both back.
func (d *DB) tryKept(kind chan struct{}) (release func(), ok bool) {
	select {
	case kind <- struct{}{}:
	default:
		return nil, false
	}
	select {
	case d.kept <- struct{}{}:
	default:
		<-kind
		return nil, false
	}
	return func() { <-d.kept; <-kind }, true
}

// ErrExportsFull refuses an export while as many as the pool allows run.
var ErrExportsFull = &surge.Error{Code: surge.CodeOverloaded, RetryAfter: 10 * time.Second,
	Message: "too many order exports are under way; retry when one has ended"}

func orders(ctx context.Context, q querier, saleID string, fn func(surge.Order) error) error {
	rows, err := q.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = $1 ORDER BY seq`, saleID)
	if err != nil {
		return fmt.Errorf("postgres: orders of sale %s: %w", saleID, err)
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return fmt.Errorf("postgres: scan order: %w", err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: orders of sale %s: %w", saleID, err)
	}
	return nil
}

// Settle moves a reserved order whose hold still runs (expires_at after
// now) to status; a cancel gives its units back to the sale's sold count.
// ErrNotReserved (with the order as it is) if it is not reserved or its
// hold ended, whether or not Expire has run yet; surge.ErrOrderNotFound if
// unknown; with ErrCommitUnknown, the order it may have moved (see
// endOrders).
func (d *DB) Settle(ctx context.Context, id string, status surge.OrderStatus, now time.Time) (surge.Order, error) {
	out, err := d.endOrders(ctx, `WITH o AS (
			UPDATE orders SET status = $2, updated_at = $3
			WHERE id = $1 AND status = 'reserved' AND expires_at > $3 RETURNING `+orderColumns+`),
		s AS (UPDATE sales SET sold = sales.sold - o.quantity FROM o WHERE sales.id = o.sale_id AND $2 <> 'paid'),
		e AS (`+outboxEventSQL("o", "$2", "$3")+`)
		SELECT `+orderColumns+` FROM o`, id, string(status), now)
	if len(out) == 1 {
		if err != nil {
			return out[0], fmt.Errorf("postgres: settle order %s: %w", id, err)
		}
		return out[0], nil
	}
	if err != nil {
		return surge.Order{}, fmt.Errorf("postgres: settle order %s: %w", id, err)
	}
	o, err := d.Order(ctx, id)
	if err != nil {
		return surge.Order{}, err
	}
	return o, ErrNotReserved
}

const existingSQL = `SELECT id FROM orders WHERE id = ANY($1)`

// Existing returns which of ids are orders.
func (d *DB) Existing(ctx context.Context, ids []string) (map[string]bool, error) {
	m, err := idSet(d.pool.Query(ctx, existingSQL, ids))
	if err != nil {
		return nil, fmt.Errorf("postgres: look up orders: %w", err)
	}
	return m, nil
}

// ExistingAfterInserts is Existing once the inserts of the sale in flight
// have ended: each holds the sale row from its start until it commits or
// fails (surge_insert_orders), and the row taken FOR SHARE waits for them.
// A node whose insert it gave up on (a timeout, a lost connection) learns
// whether that insert committed after all.
func (d *DB) ExistingAfterInserts(ctx context.Context, saleID string, ids []string) (map[string]bool, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM sales WHERE id = $1 FOR SHARE`, saleID)
	b.Queue(existingSQL, ids)
	res := d.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("postgres: wait for the inserts of sale %s: %w", saleID, err)
	}
	m, err := idSet(res.Query())
	if err != nil {
		return nil, fmt.Errorf("postgres: look up orders: %w", err)
	}
	return m, res.Close()
}

// Ended returns the orders among ids that are cancelled or expired.
func (d *DB) Ended(ctx context.Context, ids []string) ([]surge.Order, error) {
	out, err := collectOrders(d.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE id = ANY($1) AND status IN ('cancelled', 'expired')`, ids))
	if err != nil {
		return nil, fmt.Errorf("postgres: ended orders: %w", err)
	}
	return out, nil
}

// idSet collects the ids an existingSQL query returned.
func idSet(rows pgx.Rows, err error) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(found))
	for _, id := range found {
		m[id] = true
	}
	return m, nil
}

// Remaining is a sale's unreserved stock: its stock less the units of its
// live orders, the sale row's sold count, which every insert and settle
// keeps under the row's lock (migration 003). A node reads it for every
// sale while Redis is down; summed from the orders, each read scanned
// the sale's orders, 0.1 to 0.5 s for 300,000 of them.
func (d *DB) Remaining(ctx context.Context, saleID string) (int64, error) {
	var rem int64
	err := d.pool.QueryRow(ctx, `SELECT stock - sold FROM sales WHERE id = $1`, saleID).Scan(&rem)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, surge.ErrSaleNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: remaining of sale %s: %w", saleID, err)
	}
	return rem, nil
}

// recentKeysSQL reads RecentKeys' orders sale by sale, each sale's newest
// first through orders_by_sale, of the sales in service only: no index
// leads to the newest keyed orders of all, and every node's start read
// every order the cluster ever took. An archived sale's keys are never
// asked for (its purchases are refused before).
const recentKeysSQL = `SELECT ` + orderColumns + ` FROM (SELECT o.* FROM sales s CROSS JOIN LATERAL (
		SELECT ` + orderColumns + `, seq FROM orders o WHERE o.sale_id = s.id AND o.idem_key IS NOT NULL
		ORDER BY o.seq DESC LIMIT $1) o
	WHERE s.archived_at IS NULL) r ORDER BY seq DESC LIMIT $1`

// RecentKeys streams up to limit of the newest orders with an idempotency
// key of the sales in service, as first answered, newest first.
func (d *DB) RecentKeys(ctx context.Context, limit int, fn func(surge.Order)) error {
	all, err := collectOrders(d.pool.Query(ctx, recentKeysSQL, limit))
	if err != nil {
		return fmt.Errorf("postgres: recent keys: %w", err)
	}
	for _, o := range all {
		o.Status = surge.OrderReserved
		fn(o)
	}
	return nil
}
