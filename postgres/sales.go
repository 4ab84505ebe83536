package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/roomjson"
)

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

// ErrDamaged is a row Surge never writes (a hand edit): refused, naming
// the row, rather than served as a guess at what it holds.
var ErrDamaged = errors.New("postgres: database is damaged")

// decodeRoom reads a sale's stored waiting room strictly (roomjson.Parse,
// as the embedded store does): jsonb keeps whatever an edit gave it, and
// a room read leniently with an admission rate of zero, or none, made
// every join of its queue divide by zero.
func decodeRoom(b []byte) (*surge.WaitingRoom, error) {
	if b == nil {
		return nil, nil
	}
	wr, err := roomjson.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return &wr, nil
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
	// Sold is the units of the sale's live (reserved, paid) orders: Redis
	// should have stock minus Sold remaining once nothing is in flight.
	Sold int64
	// Changed is when the sale was last changed (UpdateSale), on the clock
	// of the node that changed it; zero if never.
	Changed time.Time
}

// EndedByChange reports whether the sale's end had come by the clock of
// the node that last changed it (surge.LiveState.Ended).
func (r SaleRow) EndedByChange() bool {
	return !r.EndsAt.IsZero() && !r.Changed.IsZero() && !r.Changed.Before(r.EndsAt)
}

const saleColumns = `id, name, stock, per_user_limit, price_cents, currency, starts_at, ends_at,
	hold_seconds, created_at, waiting_room, epoch, dirty, buckets, ever, paused, paused_at, paused_for_ns, sold, updated_at`

func scanSale(row pgx.Row) (SaleRow, error) {
	var (
		s            SaleRow
		ends, paused *time.Time
		changed      *time.Time
		pausedFor    int64
		room         []byte
	)
	if err := row.Scan(&s.ID, &s.Name, &s.Stock, &s.PerUserLimit, &s.PriceCents, &s.Currency, &s.StartsAt,
		&ends, &s.HoldSeconds, &s.CreatedAt, &room, &s.Epoch, &s.Dirty, &s.Buckets, &s.Ever, &s.Paused,
		&paused, &pausedFor, &s.Sold, &changed); err != nil {
		return SaleRow{}, err
	}
	s.StartsAt, s.CreatedAt = s.StartsAt.UTC(), s.CreatedAt.UTC()
	if ends != nil {
		s.EndsAt = ends.UTC()
	}
	if paused != nil {
		s.PausedAt = paused.UTC()
	}
	if changed != nil {
		s.Changed = changed.UTC()
	}
	s.PausedFor = time.Duration(pausedFor)
	var err error
	if s.WaitingRoom, err = decodeRoom(room); err != nil {
		return SaleRow{}, fmt.Errorf("sale %s: %w", s.ID, err)
	}
	return s, nil
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

// LastHoldEnds returns, per sale of ids that has orders, when the hold of
// its latest order ends, or of an order still reserved whose hold ends
// later and after since: a hold time shortened between two orders (it
// applies to reservations made after the change) leaves the earlier ones
// held past the latest. One lookup of orders_by_sale per sale, and one
// range of orders_due (the holds running or ended after since).
func (d *DB) LastHoldEnds(ctx context.Context, ids []string, since time.Time) (map[string]time.Time, error) {
	rows, err := d.pool.Query(ctx, `WITH held AS (SELECT sale_id, max(expires_at) AS expires_at FROM orders
			WHERE status = 'reserved' AND expires_at > $2 AND sale_id = ANY($1) GROUP BY sale_id)
		SELECT s.id, GREATEST(o.expires_at, h.expires_at) FROM unnest($1::text[]) AS s(id)
		LEFT JOIN LATERAL (SELECT expires_at FROM orders WHERE sale_id = s.id ORDER BY seq DESC LIMIT 1) o ON true
		LEFT JOIN held h ON h.sale_id = s.id
		WHERE o.expires_at IS NOT NULL OR h.expires_at IS NOT NULL`, ids, since)
	if err != nil {
		return nil, fmt.Errorf("postgres: last hold ends: %w", err)
	}
	out := make(map[string]time.Time, len(ids))
	var (
		id string
		at time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		out[id] = at
		return nil
	}); err != nil {
		return nil, fmt.Errorf("postgres: last hold ends: %w", err)
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
