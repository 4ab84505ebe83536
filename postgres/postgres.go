// Package postgres keeps cluster mode's durable truth in PostgreSQL: sales,
// orders, and the leases that elect the node running once-only jobs. It is
// one half of the cluster store (package cluster); Redis holds the other,
// live half, and is rebuilt from here whenever it is lost or in doubt.
//
// Three mechanisms make the pair safe:
//   - every order insert checks the guarantees itself under the sale row's
//     lock (stock, per-user limit, one order per key) and refuses a batch
//     that would break one, whatever Redis decided (ErrRefused);
//   - every order insert is fenced by the sale's epoch: a rebuild of the
//     live state bumps it under a row lock, so a batch decided against an
//     older copy of that state can never become an order afterwards;
//   - the once-only jobs hold a lease whose token grows with every term,
//     and their writes check it, so a leader that lost its lease (paused,
//     partitioned) cannot write.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/surgehq/surge"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the connection; zero fields take their defaults.
type Options struct {
	// Schema, when set, holds every table (created if missing). Tests give
	// each dataset its own; production leaves it empty (search_path).
	Schema string
	// MaxConns bounds the pool (default 16).
	MaxConns int32
}

// DB is the durable half of the cluster store.
type DB struct {
	pool    *pgxpool.Pool
	channel string // LISTEN/NOTIFY channel of this schema
}

// ErrFenced answers an insert whose batch was decided against live state
// that a rebuild has since replaced: none of it was written.
var ErrFenced = errors.New("postgres: the sale's live state was rebuilt since the batch was decided")

// ErrNotReserved answers Settle of an order that is not reserved, or
// whose hold has ended.
var ErrNotReserved = errors.New("postgres: order is not reserved")

// ErrRefused answers an insert PostgreSQL refused because it would break a
// guarantee: the sale over its stock, a buyer over the limit, or a second
// order for an idempotency key. Redis, which decided the batch, disagrees
// with the truth (it lost or rolled back state): nothing was written, and
// the sale's live state must be rebuilt.
var ErrRefused = errors.New("postgres: the batch would break a guarantee")

// Open connects, creates the schema if asked, and applies the migrations
// (versioned, under an advisory lock, so nodes starting together agree).
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		// An unreachable server must fail requests fast, not hang them.
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	cfg.MaxConns = 16
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	channel := "surge_changes"
	if opt.Schema != "" {
		if !surge.ValidID(opt.Schema) {
			return nil, fmt.Errorf("postgres: schema %q must match [A-Za-z0-9_-]{1,64}", opt.Schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opt.Schema
		channel = "surge_changes_" + opt.Schema
	}
	if err := migrateSchema(ctx, cfg.ConnConfig.Copy(), opt.Schema); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &DB{pool: pool, channel: channel}, nil
}

func migrateSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if schema != "" {
		// IF NOT EXISTS is not safe against a concurrent CREATE: nodes
		// starting together may see the catalog's unique violation, which
		// means another one created it.
		_, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("postgres: create schema %s: %w", schema, err)
		}
	}
	m, err := migrate.NewMigrator(ctx, conn, "surge_schema_version")
	if err != nil {
		return fmt.Errorf("postgres: migrator: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("postgres: load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// Close releases the pool.
func (d *DB) Close() { d.pool.Close() }

// Ping checks the server answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// ---- sales ----

type waitingRoomJSON struct {
	AdmitPerSecond int64  `json:"admit_per_second"`
	Order          string `json:"order"`
	TicketSeconds  int64  `json:"ticket_seconds"`
}

func encodeRoom(w *surge.WaitingRoom) ([]byte, error) {
	if w == nil {
		return nil, nil
	}
	return json.Marshal(waitingRoomJSON{w.AdmitPerSecond, w.Policy, w.TicketSeconds})
}

func decodeRoom(b []byte) (*surge.WaitingRoom, error) {
	if b == nil {
		return nil, nil
	}
	var j waitingRoomJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("postgres: waiting_room: %w", err)
	}
	return &surge.WaitingRoom{AdmitPerSecond: j.AdmitPerSecond, Policy: j.Order, TicketSeconds: j.TicketSeconds}, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateSale inserts a sale at epoch 1 whose live state is split over
// buckets Redis slots; surge.ErrSaleExists if the id is taken. install,
// if set, runs after the insert and before the commit, so no other node
// (the leader above all) sees the sale before its live state exists: it
// would take the missing state for lost and rebuild it. The sale commits
// whatever install returns (the leader builds a state install failed to).
func (d *DB) CreateSale(ctx context.Context, s surge.Sale, buckets int, install func(context.Context)) error {
	room, err := encodeRoom(s.WaitingRoom)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency,
			starts_at, ends_at, hold_seconds, created_at, waiting_room, buckets) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
			s.ID, s.Name, s.Stock, s.PerUserLimit, s.PriceCents, s.Currency,
			s.StartsAt, nullTime(s.EndsAt), s.HoldSeconds, s.CreatedAt, room, max(buckets, 1))
		if err == nil && install != nil {
			install(ctx)
		}
		return err
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return surge.ErrSaleExists
	}
	if err != nil {
		return fmt.Errorf("postgres: create sale %s: %w", s.ID, err)
	}
	return nil
}

// SaleRow is a sale with its fencing state.
type SaleRow struct {
	surge.Sale
	Epoch   int64
	Dirty   bool
	Buckets int
	// Ever is the units ever inserted (it only grows); Redis's count of
	// units reserved must never be below it.
	Ever int64
}

const saleColumns = `id, name, stock, per_user_limit, price_cents, currency, starts_at, ends_at,
	hold_seconds, created_at, waiting_room, epoch, dirty, buckets, ever`

func scanSale(row pgx.Row) (SaleRow, error) {
	var (
		s    SaleRow
		ends *time.Time
		room []byte
	)
	if err := row.Scan(&s.ID, &s.Name, &s.Stock, &s.PerUserLimit, &s.PriceCents, &s.Currency, &s.StartsAt,
		&ends, &s.HoldSeconds, &s.CreatedAt, &room, &s.Epoch, &s.Dirty, &s.Buckets, &s.Ever); err != nil {
		return SaleRow{}, err
	}
	s.StartsAt, s.CreatedAt = s.StartsAt.UTC(), s.CreatedAt.UTC()
	if ends != nil {
		s.EndsAt = ends.UTC()
	}
	var err error
	s.WaitingRoom, err = decodeRoom(room)
	return s, err
}

// Sales lists every sale not archived, oldest first.
func (d *DB) Sales(ctx context.Context) ([]SaleRow, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+saleColumns+` FROM sales WHERE archived_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list sales: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SaleRow, error) { return scanSale(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list sales: %w", err)
	}
	return out, nil
}

// Sale fetches one sale; surge.ErrSaleNotFound if unknown or archived.
func (d *DB) Sale(ctx context.Context, id string) (SaleRow, error) {
	s, err := scanSale(d.pool.QueryRow(ctx, `SELECT `+saleColumns+` FROM sales WHERE id = $1 AND archived_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return SaleRow{}, surge.ErrSaleNotFound
	}
	if err != nil {
		return SaleRow{}, fmt.Errorf("postgres: sale %s: %w", id, err)
	}
	return s, nil
}

// MarkDirty asks the leader to rebuild a sale's live state.
func (d *DB) MarkDirty(ctx context.Context, saleID string) error {
	if _, err := d.pool.Exec(ctx, `UPDATE sales SET dirty = true WHERE id = $1`, saleID); err != nil {
		return fmt.Errorf("postgres: mark sale %s dirty: %w", saleID, err)
	}
	return nil
}

// ---- orders ----

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
		n := len(orders)
		ids, users, keys := make([]string, n), make([]string, n), make([]string, n)
		qty := make([]int64, n)
		created, expires := make([]time.Time, n), make([]time.Time, n)
		for i, o := range orders {
			ids[i], users[i], keys[i], qty[i] = o.ID, o.UserID, o.IdempotencyKey, o.Quantity
			created[i], expires[i] = o.CreatedAt, o.ExpiresAt
		}
		b.Queue(`SELECT surge_insert_orders($1, $2, $3, $4, $5, $6, $7, $8)`,
			saleID, epoch, ids, users, qty, keys, created, expires)
	}
	if len(confirm) > 0 {
		b.Queue(existingSQL, confirm)
	}
	if b.Len() == 0 {
		return 0, nil, nil
	}
	res := d.pool.SendBatch(ctx, b)
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

func collectOrders(rows pgx.Rows) ([]surge.Order, error) {
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

// Orders streams a sale's orders in creation order.
func (d *DB) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	rows, err := d.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = $1 ORDER BY seq`, saleID)
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
// unknown.
func (d *DB) Settle(ctx context.Context, id string, status surge.OrderStatus, now time.Time) (surge.Order, error) {
	o, err := scanOrder(d.pool.QueryRow(ctx, `WITH o AS (
			UPDATE orders SET status = $2, updated_at = $3
			WHERE id = $1 AND status = 'reserved' AND expires_at > $3 RETURNING `+orderColumns+`),
		s AS (UPDATE sales SET sold = sales.sold - o.quantity FROM o WHERE sales.id = o.sale_id AND $2 <> 'paid')
		SELECT `+orderColumns+` FROM o`, id, string(status), now))
	if err == nil {
		return o, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return surge.Order{}, fmt.Errorf("postgres: settle order %s: %w", id, err)
	}
	o, err = d.Order(ctx, id)
	if err != nil {
		return surge.Order{}, err
	}
	return o, ErrNotReserved
}

// Lease is a term of leadership for the once-only jobs.
type Lease struct {
	Name, Holder string
	Token        int64
}

// leaseHeld is the fence every leader write carries.
const leaseHeld = `EXISTS (SELECT 1 FROM leases WHERE name = $%d AND holder = $%d AND token = $%d AND expires_at > now())`

func fence(first int) string { return fmt.Sprintf(leaseHeld, first, first+1, first+2) }

// Expire moves up to limit reserved orders whose hold ended at or before
// now to expired, if the lease is still held, and returns them.
func (d *DB) Expire(ctx context.Context, now time.Time, l Lease, limit int) ([]surge.Order, error) {
	rows, err := d.pool.Query(ctx, `WITH x AS (UPDATE orders SET status = 'expired', updated_at = $1
			WHERE id IN (SELECT id FROM orders WHERE status = 'reserved' AND expires_at <= $1
				ORDER BY expires_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
			AND `+fence(3)+` RETURNING `+orderColumns+`),
		s AS (UPDATE sales SET sold = sales.sold - d.q
			FROM (SELECT sale_id, sum(quantity) AS q FROM x GROUP BY sale_id) d WHERE sales.id = d.sale_id)
		SELECT `+orderColumns+` FROM x`, now, limit, l.Name, l.Holder, l.Token)
	if err != nil {
		return nil, fmt.Errorf("postgres: expire: %w", err)
	}
	out, err := collectOrders(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: expire: %w", err)
	}
	return out, nil
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

// Remaining computes a sale's unreserved stock from the orders.
func (d *DB) Remaining(ctx context.Context, saleID string) (int64, error) {
	var rem *int64
	err := d.pool.QueryRow(ctx, `SELECT s.stock - COALESCE((SELECT sum(quantity) FROM orders
		WHERE sale_id = s.id AND status IN ('reserved', 'paid')), 0) FROM sales s WHERE s.id = $1`, saleID).Scan(&rem)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, surge.ErrSaleNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: remaining of sale %s: %w", saleID, err)
	}
	return *rem, nil
}

// Rebuild starts a new epoch of a sale's live state, if the lease is still
// held, and returns the truth to build it from (Live: its reserved and
// paid orders). The epoch bump waits for inserts in flight and fails every
// later insert of the old epoch, so the snapshot contains every order that
// will ever exist from before it.
func (d *DB) Rebuild(ctx context.Context, saleID string, l Lease) (surge.LiveState, error) {
	var snap surge.LiveState
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		row, err := scanSale(tx.QueryRow(ctx, `UPDATE sales SET epoch = epoch + 1, dirty = false
			WHERE id = $1 AND archived_at IS NULL AND `+fence(2)+` RETURNING `+saleColumns, saleID, l.Name, l.Holder, l.Token))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		snap.Sale, snap.Epoch, snap.Buckets, snap.Ever = row.Sale, row.Epoch, row.Buckets, row.Ever
		rows, err := tx.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = $1
			AND (status IN ('reserved', 'paid') OR idem_key IS NOT NULL) ORDER BY seq`, saleID)
		if err != nil {
			return err
		}
		all, err := collectOrders(rows)
		if err != nil {
			return err
		}
		var sold int64
		for _, o := range all {
			if o.Status.Live() {
				snap.Live = append(snap.Live, o)
				sold += o.Quantity
			}
			if o.IdempotencyKey != "" {
				first := o
				first.Status = surge.OrderReserved
				snap.Keyed = append(snap.Keyed, first)
			}
		}
		// The sold count is kept by every insert and settle; the rebuild,
		// which reads every live order anyway, sets it from them.
		_, err = tx.Exec(ctx, `UPDATE sales SET sold = $2 WHERE id = $1`, saleID, sold)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return surge.LiveState{}, err
		}
		return surge.LiveState{}, fmt.Errorf("postgres: rebuild sale %s: %w", saleID, err)
	}
	return snap, nil
}

// ErrLeaseLost answers a leader write after its lease passed to another.
var ErrLeaseLost = errors.New("postgres: lease lost")

// Acquire takes or renews the lease name for holder for ttl; ok is false
// while another holder's lease is current. A new term gets a larger token.
func (d *DB) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	var token int64
	err := d.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, token, expires_at)
		VALUES ($1, $2, 1, now() + $3::interval)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
			token = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now()
				THEN leases.token ELSE leases.token + 1 END
		WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
		RETURNING token`, name, holder, ttl.String()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("postgres: lease %s: %w", name, err)
	}
	return Lease{Name: name, Holder: holder, Token: token}, true, nil
}

// Resign gives up holder's lease name, if it holds it, so another node
// may take it at once.
func (d *DB) Resign(ctx context.Context, name, holder string) error {
	_, err := d.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND expires_at > now()`,
		name, holder)
	return err
}

// ---- change notifications ----

// Notify tells every node that a sale was created or got units back.
func (d *DB) Notify(ctx context.Context, saleID string) error {
	_, err := d.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, d.channel, saleID)
	return err
}

// Listen calls fn with the sale id of every notification until ctx ends,
// reconnecting after failures; after each (re)connect it calls fn("")
// because notifications sent while disconnected are lost.
func (d *DB) Listen(ctx context.Context, fn func(saleID string)) {
	for ctx.Err() == nil {
		err := d.listen(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		_ = err // the caller's periodic sync covers the gap
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *DB) listen(ctx context.Context, fn func(string)) error {
	pc, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection ends in LISTEN state; it must not go back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return err
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

// RecentKeys streams up to limit of the newest orders with an idempotency
// key, as first answered, newest first.
func (d *DB) RecentKeys(ctx context.Context, limit int, fn func(surge.Order)) error {
	rows, err := d.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE idem_key IS NOT NULL
		ORDER BY seq DESC LIMIT $1`, limit)
	if err != nil {
		return fmt.Errorf("postgres: recent keys: %w", err)
	}
	all, err := collectOrders(rows)
	if err != nil {
		return fmt.Errorf("postgres: recent keys: %w", err)
	}
	for _, o := range all {
		o.Status = surge.OrderReserved
		fn(o)
	}
	return nil
}
