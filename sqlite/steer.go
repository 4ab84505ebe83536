package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
)

// UpdateSale implements surge.Steerer: the change's instant (an end
// "now", a pause's start, updated_at) is read once the sale's lock is
// held. The change waits for it behind the sale's reservations, which
// decide at their own instant under it (Reserve): an end read before the
// wait came before the reservations that went ahead of the change, and
// left orders made after the sale's end.
func (s *Store) UpdateSale(ctx context.Context, id string, p surge.SalePatch, clock func() time.Time) (surge.Sale, error) {
	st := s.sale(id)
	if st == nil {
		return surge.Sale{}, surge.ErrSaleNotFound
	}
	// The sale's lock orders the change after every reservation and
	// settlement in flight (they hold it across their commit) and before
	// every later one, which decides against the changed ledger. The wait
	// for it honours the caller's context: a reservation of the sale
	// holds it across a commit, which a stalled disk stalls.
	if err := ctxlock.Lock(ctx, &st.mu); err != nil {
		return surge.Sale{}, fmt.Errorf("sqlite: update sale %s: %w", id, err)
	}
	defer st.mu.Unlock()
	if s.closed.Load() {
		return surge.Sale{}, surge.ErrUnavailable
	}
	if st.archived {
		return surge.Sale{}, surge.ErrSaleNotFound
	}
	if err := s.wake(ctx, st); err != nil {
		return surge.Sale{}, err
	}
	now := clock()
	if p.EndNow {
		p.EndsAt, p.EndNow = &now, false
	}
	next, err := st.l.Sale().Apply(p, st.l.Sold(), now)
	if err != nil {
		return surge.Sale{}, err
	}
	var ends, paused any
	if !next.EndsAt.IsZero() {
		ends = formatTime(next.EndsAt)
	}
	if !next.PausedAt.IsZero() {
		paused = formatTime(next.PausedAt)
	}
	// Straight on the writer's pool, as archive does: the statement waits
	// for the writer's transaction in progress, and synchronous=FULL makes
	// it durable before it returns. Only then does memory change. The wait
	// for the writer's connection honours the caller's context (nothing
	// is written yet; a stalled disk would otherwise hold the request, and
	// the sale's lock, for as long as it stalls); the UPDATE does not: a
	// statement cut short could leave the disk changed and memory not.
	// Its outcome counts as any commit's (wrote): a failure makes the
	// store unready and leaves no seal.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return surge.Sale{}, s.unavailable(fmt.Errorf("sqlite: update sale %s: %w", id, err))
	}
	defer conn.Close()
	// As a group commit does (inPlace): into a surge.db or WAL no name
	// reaches any more, the change would be answered and then lost.
	if err := s.wrote(s.inPlace()); err != nil {
		return surge.Sale{}, s.unavailable(fmt.Errorf("sqlite: update sale %s: %w", id, err))
	}
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), `UPDATE sales SET name = ?, stock = ?, per_user_limit = ?, ends_at = ?,
		hold_seconds = ?, paused = ?, limit_ceiling = ?, updated_at = ?, paused_at = ?, paused_for_ns = ? WHERE id = ?`,
		next.Name, next.Stock, next.PerUserLimit, ends, next.HoldSeconds, next.Paused,
		max(st.l.Ceiling(), next.PerUserLimit), formatTime(now), paused, int64(next.PausedFor), id); s.wrote(err) != nil {
		return surge.Sale{}, s.unavailable(fmt.Errorf("sqlite: update sale %s: %w", id, err))
	}
	st.l.Steer(next)
	return next, nil
}

// Sale implements surge.Steerer from memory.
func (s *Store) Sale(ctx context.Context, id string) (surge.Sale, error) {
	if s.closed.Load() {
		return surge.Sale{}, surge.ErrUnavailable
	}
	st := s.sale(id)
	if st == nil {
		return surge.Sale{}, surge.ErrSaleNotFound
	}
	return *st.l.Sale(), nil
}

// ceilings reads the largest per-user limit each sale ever had, where it
// was lowered since.
func ceilings(ctx context.Context, db source) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, limit_ceiling FROM sales WHERE limit_ceiling IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read limit ceilings: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64)
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("sqlite: read limit ceilings: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

var _ surge.Steerer = (*Store)(nil)
