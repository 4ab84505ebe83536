package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
)

// Archiving: an archived sale keeps its row and its orders, but its ledger
// is dropped and it is no longer loaded at start. A row of archived_sales
// marks it (a table of its own, so the sales table keeps its shape) and
// keeps the figure its ledger would have computed.
const archiveSchema = `
CREATE TABLE IF NOT EXISTS archived_sales (
	sale_id     TEXT PRIMARY KEY REFERENCES sales (id),
	archived_at TEXT NOT NULL,
	remaining   INTEGER NOT NULL CHECK (remaining >= 0)
) STRICT;
`

// upgradeArchive creates the archive table in a database made before it.
func upgradeArchive(ctx context.Context, db schemaDB) error {
	_, err := db.ExecContext(ctx, archiveSchema)
	return err
}

// ArchiveSale implements surge.Archiver.
func (s *Store) ArchiveSale(ctx context.Context, saleID string, now time.Time) (surge.ArchivedSale, error) {
	st := s.sale(saleID)
	if st == nil {
		return surge.ArchivedSale{}, surge.ErrSaleNotFound
	}
	a, err := s.archive(ctx, st, now)
	if err != nil {
		return surge.ArchivedSale{}, err
	}
	// After st.mu is released: Close takes s.mu before the sale locks.
	s.mu.Lock()
	if s.sales[saleID] == st {
		delete(s.sales, saleID)
	}
	s.mu.Unlock()
	return a, nil
}

func (s *Store) archive(ctx context.Context, st *saleState, now time.Time) (surge.ArchivedSale, error) {
	// The sale's lock orders the archive after every reservation and
	// settlement in flight; its ledger stays in place until the row says
	// archived, so a failed write changes nothing. The wait for it honours
	// the caller's context: they hold it across their commit.
	if err := ctxlock.Lock(ctx, &st.mu); err != nil {
		return surge.ArchivedSale{}, fmt.Errorf("sqlite: archive %s: %w", st.l.Sale().ID, err)
	}
	defer st.mu.Unlock()
	if s.closed.Load() {
		return surge.ArchivedSale{}, surge.ErrUnavailable
	}
	if st.archived {
		return surge.ArchivedSale{}, surge.ErrSaleNotFound
	}
	sale := *st.l.Sale()
	if !sale.Archivable(now) {
		return surge.ArchivedSale{}, surge.Errorf(surge.CodeNotArchivable,
			"sale %s has not ended: only a sale past its ends_at, or one yet to start, can be archived", sale.ID)
	}
	// now was read before the wait for the lock, which a stalled commit
	// can make long: a sale yet to start at now may have started and sold
	// since. One that has an order, whatever its status, has started, and
	// calling it off would take a live sale, and its buyers' orders, out
	// of service.
	if sale.Window(now) == surge.CodeNotStarted {
		var started bool
		if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE sale_id = ?)`, sale.ID).Scan(&started); err != nil {
			return surge.ArchivedSale{}, s.unavailable(fmt.Errorf("sqlite: archive %s: %w", sale.ID, err))
		}
		if started {
			return surge.ArchivedSale{}, surge.Errorf(surge.CodeNotArchivable,
				"sale %s has started and holds orders: only a sale past its ends_at, or one yet to start, can be archived", sale.ID)
		}
	}
	// Disk and ledger agree under the lock; a rare admin call can afford
	// the indexed count.
	var reserved int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE sale_id = ? AND status = 'reserved'`, sale.ID).Scan(&reserved); err != nil {
		return surge.ArchivedSale{}, s.unavailable(fmt.Errorf("sqlite: archive %s: %w", sale.ID, err))
	}
	if reserved > 0 {
		return surge.ArchivedSale{}, surge.Errorf(surge.CodeNotArchivable,
			"sale %s still has %d reserved orders: archive it once they are paid, cancelled or expired", sale.ID, reserved)
	}
	a := surge.ArchivedSale{Sale: sale, Remaining: st.l.Remaining(), ArchivedAt: now.UTC().Truncate(time.Millisecond)}
	// Straight on the writer's pool (one connection): the statement waits
	// for the writer's transaction in progress, and synchronous=FULL makes
	// it durable before it returns. That wait honours the caller's
	// context: nothing is written yet, and a stalled disk would otherwise
	// hold the request, and the sale's lock, for as long as it stalls. The
	// INSERT does not, as UpdateSale's UPDATE does not: the driver reports
	// a context that ended while the row committed as that context's
	// error, and the disk would then say archived while memory keeps the
	// sale in service. Its outcome counts as any commit's (wrote, as
	// UpdateSale's).
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return surge.ArchivedSale{}, s.unavailable(fmt.Errorf("sqlite: archive %s: %w", sale.ID, err))
	}
	defer conn.Close()
	// As a group commit does (inPlace), so an archive answered is never
	// lost with a file no name reaches.
	if err := s.wrote(s.inPlace()); err != nil {
		return surge.ArchivedSale{}, s.unavailable(fmt.Errorf("sqlite: archive %s: %w", sale.ID, err))
	}
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), `INSERT INTO archived_sales (sale_id, archived_at, remaining) VALUES (?, ?, ?)`,
		sale.ID, formatTime(a.ArchivedAt), a.Remaining); s.wrote(err) != nil {
		return surge.ArchivedSale{}, s.unavailable(fmt.Errorf("sqlite: archive %s: %w", sale.ID, err))
	}
	st.archived = true
	return a, nil
}

// ArchivedSales implements surge.Archiver.
func (s *Store) ArchivedSales(ctx context.Context) ([]surge.ArchivedSale, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	// Two reads rather than one per sale: the rows, oldest first, then
	// the archive's figures.
	sales, err := s.scanSales(ctx, s.r, `WHERE id IN (SELECT sale_id FROM archived_sales)`)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT sale_id, archived_at, remaining FROM archived_sales`)
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("sqlite: list archived sales: %w", err))
	}
	defer rows.Close()
	archived := make(map[string]surge.ArchivedSale, len(sales))
	for rows.Next() {
		var (
			id, at string
			a      surge.ArchivedSale
		)
		if err := rows.Scan(&id, &at, &a.Remaining); err != nil {
			return nil, fmt.Errorf("sqlite: scan archived sale: %w", err)
		}
		if a.ArchivedAt, err = parseTime(at); err != nil {
			return nil, err
		}
		archived[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, s.unavailable(fmt.Errorf("sqlite: list archived sales: %w", err))
	}
	out := make([]surge.ArchivedSale, 0, len(sales))
	for _, sl := range sales {
		a := archived[sl.ID]
		a.Sale = sl
		out = append(out, a)
	}
	return out, nil
}

// archivedSale reports whether saleID names an archived sale.
func (s *Store) archivedSale(ctx context.Context, saleID string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM archived_sales WHERE sale_id = ?`, saleID).Scan(&n)
	if err != nil {
		return false, s.unavailable(fmt.Errorf("sqlite: sale %s: %w", saleID, err))
	}
	return n > 0, nil
}
