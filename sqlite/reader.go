package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/surgehq/surge"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Reader reads a data directory's sales, orders and payments without
// opening a Store: read-only, without the directory's lock, so it works
// while `surge serve` holds it (WAL readers never block the writer) and
// after. It is what `surge reconcile` reads. Every read is of one read
// transaction, so of one instant: a payment or a purchase the server
// commits while the reader reads shows in all of them or in none. A
// directory no server has open is read without writing to it
// (openStopped); a server that starts on it meanwhile fails the reads
// after, which cannot tell whether they saw one instant.
type Reader struct {
	db      *sql.DB
	tx      *sql.Tx
	closeDB func() error
	stopped *stoppedDB // nil: read as a running server's readers do
}

// OpenReader opens the database in dir read-only. A missing database is
// an error, never created.
func OpenReader(ctx context.Context, dir string) (*Reader, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	r := &Reader{}
	stopped, err := openStopped(path)
	switch {
	case err != nil:
		return nil, err
	case stopped != nil:
		r.db, r.closeDB, r.stopped = stopped.DB, stopped.close, stopped
	default:
		r.db, err = sql.Open("sqlite", fileURI(path)+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		r.closeDB = r.db.Close
	}
	fail := func(err error) (*Reader, error) {
		r.closeDB()
		return nil, r.held(err)
	}
	// First: a newer version's layout may lack a table this build reads,
	// and the advice below would send the operator to a start that
	// refuses the database.
	if err := checkVersion(ctx, r.db, path); err != nil {
		return fail(err)
	}
	// A database of a version before payments has none: the table is
	// missing until the next `surge serve` creates it.
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name IN ('sales','orders','archived_sales','payments')`).Scan(&n); err != nil {
		return fail(fmt.Errorf("sqlite: read %s: %w", path, err))
	}
	if n != 4 {
		return fail(fmt.Errorf("sqlite: %s lacks tables of this version; run this version's surge serve on it once", path))
	}
	if r.tx, err = r.db.BeginTx(ctx, nil); err != nil {
		return fail(fmt.Errorf("sqlite: read %s: %w", path, err))
	}
	return r, nil
}

// held is err of a read, unless a server started on the stopped
// directory since it was opened: then nothing read can be trusted.
func (r *Reader) held(err error) error {
	if r.stopped != nil {
		if cerr := r.stopped.changed(); cerr != nil {
			return cerr
		}
	}
	return err
}

// Close closes the database.
func (r *Reader) Close() error {
	r.tx.Rollback()
	return r.closeDB()
}

// Sales lists every sale, oldest first, with the final remaining figure
// of the archived ones (nil for a sale in service).
func (r *Reader) Sales(ctx context.Context) ([]surge.Sale, map[string]int64, error) {
	sales, archived, err := r.sales(ctx)
	if err = r.held(err); err != nil {
		return nil, nil, err
	}
	return sales, archived, nil
}

func (r *Reader) sales(ctx context.Context) ([]surge.Sale, map[string]int64, error) {
	sales, err := querySales(ctx, r.tx, "")
	if err != nil {
		return nil, nil, err
	}
	rows, err := r.tx.QueryContext(ctx, `SELECT sale_id, remaining FROM archived_sales`)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: archived sales: %w", err)
	}
	defer rows.Close()
	archived := map[string]int64{}
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, nil, fmt.Errorf("sqlite: archived sales: %w", err)
		}
		archived[id] = n
	}
	return sales, archived, rows.Err()
}

// Orders streams a sale's orders in creation order.
func (r *Reader) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	return r.held(r.orders(ctx, saleID, fn))
}

func (r *Reader) orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	rows, err := r.tx.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = ? ORDER BY seq`, saleID)
	if err != nil {
		return fmt.Errorf("sqlite: orders of %s: %w", saleID, err)
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Payments streams every payment, oldest first.
func (r *Reader) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	return r.held(streamPayments(ctx, r.tx, fn))
}

// CheckVersion refuses with ErrNewer the database in dir if a newer
// version of Surge wrote it. It reads read-only and without the
// directory's lock, so while another process serves the database: the
// new process of a zero-downtime upgrade asks before it tells the old one
// to go, so that a rollback to a binary older than the database fails
// while the old process still serves. A missing database passes: a start
// creates it. A directory no server has open is left as it was (readDB).
func CheckVersion(ctx context.Context, dir string) error {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return readDB(ctx, path, func(db *sql.DB, _ bool) error { return checkVersion(ctx, db, path) })
}
