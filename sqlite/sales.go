package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
	"github.com/surgehq/surge/ledger"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// CreateSale implements surge.Store.
func (s *Store) CreateSale(ctx context.Context, sale surge.Sale) error {
	// Creations run one at a time, so the check below sees every sale
	// made before, and Close waits for the one in progress. s.mu, which
	// every call that finds a sale takes (a purchase, a replay on the
	// engine's fast path), is held only to publish: not across the
	// commit, which a slow or stalled disk makes last. A taken id that
	// memory no longer holds (archived) is refused by the row's key.
	// Both waits, for the creation before and for the writer, honour
	// ctx until the writer takes the row: nothing is written before.
	if err := ctxlock.Lock(ctx, &s.createMu); err != nil {
		return fmt.Errorf("sqlite: create sale %s: %w", sale.ID, err)
	}
	defer s.createMu.Unlock()
	// Close sets closed under createMu, and memory keeps its sales: a
	// closed store knows of no sale to refuse an id for.
	if s.closed.Load() {
		return surge.ErrUnavailable
	}
	if s.sale(sale.ID) != nil {
		return surge.ErrSaleExists
	}
	if err := s.submitCtx(ctx, &commit{sale: &sale}); err != nil {
		return err
	}
	s.mu.Lock()
	s.sales[sale.ID] = &saleState{l: ledger.New(sale)}
	s.mu.Unlock()
	return nil
}

// Sales implements surge.Store: archived sales are not listed.
func (s *Store) Sales(ctx context.Context) ([]surge.Sale, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	return s.scanSales(ctx, s.w, `WHERE id NOT IN (SELECT sale_id FROM archived_sales)`)
}

// scanSales reads the sales rows that where selects, oldest first.
func (s *Store) scanSales(ctx context.Context, db *sql.DB, where string, args ...any) ([]surge.Sale, error) {
	out, err := querySales(ctx, db, where, args...)
	return out, s.unavailable(err)
}

// querySales is scanSales on any handle (Reader's too).
func querySales(ctx context.Context, db source, where string, args ...any) ([]surge.Sale, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, name, stock, per_user_limit, price_cents, currency,
		starts_at, ends_at, hold_seconds, created_at, waiting_room, paused, paused_at, paused_for_ns FROM sales `+where+`
		ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list sales: %w", err)
	}
	defer rows.Close()
	var out []surge.Sale
	for rows.Next() {
		var (
			sl                 surge.Sale
			starts, created    string
			ends, room, paused sql.NullString
			pausedFor          int64
		)
		if err := rows.Scan(&sl.ID, &sl.Name, &sl.Stock, &sl.PerUserLimit, &sl.PriceCents, &sl.Currency,
			&starts, &ends, &sl.HoldSeconds, &created, &room, &sl.Paused, &paused, &pausedFor); err != nil {
			return nil, fmt.Errorf("sqlite: scan sale: %w", err)
		}
		if sl.StartsAt, err = parseTime(starts); err != nil {
			return nil, err
		}
		if sl.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if ends.Valid {
			if sl.EndsAt, err = parseTime(ends.String); err != nil {
				return nil, err
			}
		}
		if paused.Valid {
			if sl.PausedAt, err = parseTime(paused.String); err != nil {
				return nil, err
			}
		}
		sl.PausedFor = time.Duration(pausedFor)
		if room.Valid {
			if sl.WaitingRoom, err = parseWaitingRoom(room.String); err != nil {
				return nil, fmt.Errorf("sqlite: sale %s: %w", sl.ID, err)
			}
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list sales: %w", err)
	}
	return out, nil
}
