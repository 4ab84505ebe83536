package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/ledger"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Loading at start. Each sale in service is loaded on its own, by one
// indexed scan of its orders. A sale that has ended and holds no reserved
// order decides nothing any more but replays, so it is left dormant: its
// figures come from one aggregate over its orders, and its orders stay on
// disk (Order, Orders and findKeys read them there), so thousands of past
// sales cost neither memory nor the time to load them. Steering one
// (UpdateSale, which may reopen it) loads it whole first (wake).

// load rebuilds every ledger from the database.
func (s *Store) load(ctx context.Context) error {
	sales, err := s.Sales(ctx)
	if err != nil {
		return err
	}
	ceilings, err := s.ceilings(ctx)
	if err != nil {
		return err
	}
	if err := s.orphans(ctx); err != nil {
		return err
	}
	now := s.opts.Now()
	restored := 0
	for _, sale := range sales {
		if err := checkSale(sale); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		l := ledger.New(sale)
		l.RaiseCeiling(ceilings[sale.ID])
		dormant := false
		if sale.Window(now) == surge.CodeEnded {
			if dormant, err = s.doze(ctx, l); err != nil {
				return err
			}
		}
		if !dormant {
			n, err := s.restore(ctx, l, now)
			if err != nil {
				return err
			}
			restored += n
		}
		if err := l.Verify(); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		s.sales[sale.ID] = &saleState{l: l}
	}
	if restored >= bigLoad {
		// The scan's garbage (a few strings per row) would otherwise stay
		// resident until the scavenger gets to it, minutes later; the
		// collection is cheap, the ledgers holding no pointers.
		debug.FreeOSMemory()
	}
	return nil
}

// bigLoad is the number of orders restored past which load hands the
// memory it freed back to the operating system at once.
const bigLoad = 100_000

// orphans refuses a database holding orders of a sale it does not have.
// It visits each distinct sale_id of orders_by_sale once, a seek per
// sale (the recursive query below is SQLite's documented skip scan),
// rather than every order: one sale of a million orders costs one seek,
// not a scan of the index (0.2 s).
func (s *Store) orphans(ctx context.Context) error {
	var id, sale string
	err := s.w.QueryRowContext(ctx, `WITH RECURSIVE ids(sale_id) AS (
			SELECT min(sale_id) FROM orders
			UNION ALL
			SELECT (SELECT min(sale_id) FROM orders WHERE sale_id > ids.sale_id) FROM ids WHERE ids.sale_id IS NOT NULL)
		SELECT (SELECT id FROM orders WHERE orders.sale_id = ids.sale_id ORDER BY seq LIMIT 1), sale_id FROM ids
		WHERE sale_id IS NOT NULL AND sale_id NOT IN (SELECT id FROM sales) LIMIT 1`).Scan(&id, &sale)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: load orders: %w", err)
	}
	return fmt.Errorf("sqlite: %s: %w: order %s belongs to unknown sale %s", s.path, ErrDamaged, id, sale)
}

// doze makes l dormant if its sale holds no reserved order, from one
// aggregate of its orders (they are checked when a wake loads them).
func (s *Store) doze(ctx context.Context, l *ledger.Sale) (bool, error) {
	var reserved, sold int64
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status = 'reserved'),
		coalesce(sum(quantity) FILTER (WHERE status IN ('reserved','paid')), 0) FROM orders WHERE sale_id = ?`,
		l.Sale().ID).Scan(&reserved, &sold); err != nil {
		return false, fmt.Errorf("sqlite: load sale %s: %w", l.Sale().ID, err)
	}
	if reserved > 0 {
		return false, nil
	}
	l.Dormant(sold)
	return true, nil
}

// restore replays every order of l's sale into it. Only live orders' keys
// and the window's are kept; older ones are looked up on disk when used
// (findKeys).
//
// It reads each order as one text value, its columns joined by unitSep
// (restoreJoined): database/sql and the driver allocate and convert each
// column of each row, which made reading the columns one by one half the
// cost of a start (docs/benchmarks.md, issue 14). A row that does not
// split exactly has the sale read again column by column (restoreRows),
// which names what is wrong with it, as it always did.
func (s *Store) restore(ctx context.Context, l *ledger.Sale, now time.Time) (int, error) {
	n, err := s.restoreJoined(ctx, l, now)
	if !errors.Is(err, errOddRow) {
		return n, err
	}
	full := ledger.New(*l.Sale())
	full.RaiseCeiling(l.Ceiling())
	if n, err = s.restoreRows(ctx, full, now); err != nil {
		return 0, err
	}
	l.Adopt(full)
	return n, nil
}

// errOddRow is a row restoreJoined cannot split into its columns exactly.
var errOddRow = errors.New("a row that does not split into its columns")

// unitSep joins the columns restoreJoined reads: no id, user id or key
// Surge writes contains it (surge.ValidID, surge.ValidKey), nor do a
// status, a number or a time, so a row of an order Surge wrote holds it
// exactly six times.
const unitSep = '\x1f'

// restoreJoined is restore reading each row as one value: id, user id,
// quantity, status, created_at and expires_at, then the key (empty for
// none), joined by unitSep. Two goroutines share the work: one steps
// SQLite through the rows and parses them (scanJoined), the caller checks
// and restores them, batch by batch, so a start uses two cores. It
// presizes l's indexes from a count of the sale's orders (an index scan,
// on the reader's connection, beside the scan), so that they are made
// once instead of rehashed as they grow.
func (s *Store) restoreJoined(ctx context.Context, l *ledger.Sale, now time.Time) (int, error) {
	sale := *l.Sale()
	// Against the largest limit the sale ever had: an order may predate a
	// lowered one.
	rules := sale
	rules.PerUserLimit = l.Ceiling()
	keysAfter := now.Add(-s.opts.IdempotencyTTL)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full, free := make(chan []surge.Order, restoreBatches), make(chan []surge.Order, restoreBatches)
	for range restoreBatches {
		free <- make([]surge.Order, 0, restoreBatch)
	}
	scanned := make(chan error, 1)
	go func() { scanned <- s.scanJoined(ctx, sale.ID, free, full) }()
	// fail stops the scan and waits for it to end before restore returns.
	fail := func(err error) (int, error) {
		cancel()
		for range full {
		}
		<-scanned
		return 0, err
	}
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE sale_id = ?`, sale.ID).Scan(&total); err != nil {
		return fail(fmt.Errorf("sqlite: count orders of %s: %w", sale.ID, err))
	}
	l.Grow(total)
	n := 0
	for batch := range full {
		for i := range batch {
			if err := checkOrder(&rules, batch[i]); err != nil {
				return fail(fmt.Errorf("sqlite: %s: %w", s.path, err))
			}
		}
		l.RestoreAll(batch, keysAfter)
		n += len(batch)
		free <- batch[:0]
	}
	if err := <-scanned; err != nil {
		return 0, err
	}
	return n, nil
}

// restoreBatch orders make a batch restoreJoined's scan hands over, and
// restoreBatches batches are in flight: enough that neither goroutine
// waits for the other on every batch, few enough to stay in the caches.
const (
	restoreBatch   = 512
	restoreBatches = 4
)

// scanJoined reads the orders of sale saleID into the batches it takes
// from free and sends them on full, which it closes when it returns. The
// orders' strings share each row's one string.
func (s *Store) scanJoined(ctx context.Context, saleID string, free <-chan []surge.Order, full chan<- []surge.Order) error {
	defer close(full)
	rows, err := s.w.QueryContext(ctx, `SELECT id || char(31) || user_id || char(31) || quantity || char(31) || status
		|| char(31) || created_at || char(31) || expires_at || char(31) || coalesce(idempotency_key, '')
		FROM orders WHERE sale_id = ? ORDER BY seq`, saleID)
	if err != nil {
		return fmt.Errorf("sqlite: load orders of %s: %w", saleID, err)
	}
	defer rows.Close()
	batch := <-free
	var (
		row sql.NullString
		f   [6]string
	)
	for rows.Next() {
		if err := rows.Scan(&row); err != nil {
			return fmt.Errorf("sqlite: scan order: %w", err)
		}
		if !row.Valid {
			return errOddRow // a NULL column: only possible in a damaged database
		}
		o := surge.Order{SaleID: saleID}
		if o.IdempotencyKey, err = split(row.String, &f); err != nil {
			return err
		}
		o.ID, o.UserID, o.Status = f[0], f[1], surge.OrderStatus(f[3])
		if o.Quantity, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			return errOddRow
		}
		if o.CreatedAt, err = parseStoredTime(f[4]); err != nil {
			return err
		}
		if o.ExpiresAt, err = parseStoredTime(f[5]); err != nil {
			return err
		}
		if batch = append(batch, o); len(batch) < cap(batch) {
			continue
		}
		select {
		case full <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case batch = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: load orders of %s: %w", saleID, err)
	}
	if len(batch) > 0 {
		select {
		case full <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// split cuts a row of restoreJoined into its six columns and returns the
// key, the rest: it fails with errOddRow unless the row holds exactly six
// separators.
func split(row string, f *[6]string) (string, error) {
	for i := range f {
		j := strings.IndexByte(row, unitSep)
		if j < 0 {
			return "", errOddRow
		}
		f[i], row = row[:j], row[j+1:]
	}
	if strings.IndexByte(row, unitSep) >= 0 {
		return "", errOddRow
	}
	return row, nil
}

// restoreRows is restore reading the columns one by one.
func (s *Store) restoreRows(ctx context.Context, l *ledger.Sale, now time.Time) (int, error) {
	sale := *l.Sale()
	// Against the largest limit the sale ever had: an order may predate a
	// lowered one.
	rules := sale
	rules.PerUserLimit = l.Ceiling()
	keysAfter := now.Add(-s.opts.IdempotencyTTL)
	rows, err := s.w.QueryContext(ctx, `SELECT id, user_id, quantity, status, idempotency_key, created_at, expires_at
		FROM orders WHERE sale_id = ? ORDER BY seq`, sale.ID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: load orders of %s: %w", sale.ID, err)
	}
	defer rows.Close()
	o := surge.Order{SaleID: sale.ID}
	var (
		status           string
		key              sql.NullString
		created, expires string
	)
	n := 0
	for rows.Next() {
		if err := rows.Scan(&o.ID, &o.UserID, &o.Quantity, &status, &key, &created, &expires); err != nil {
			return 0, fmt.Errorf("sqlite: scan order: %w", err)
		}
		o.Status, o.IdempotencyKey = surge.OrderStatus(status), key.String
		if o.CreatedAt, err = parseTime(created); err != nil {
			return 0, err
		}
		if o.ExpiresAt, err = parseTime(expires); err != nil {
			return 0, err
		}
		if err := checkOrder(&rules, o); err != nil {
			return 0, fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		l.Restore(o, keysAfter)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: load orders of %s: %w", sale.ID, err)
	}
	return n, nil
}

// wake loads a dormant sale whole before it is steered (a new end may
// reopen it). The caller holds the sale's lock.
func (s *Store) wake(ctx context.Context, st *saleState) error {
	if !st.l.IsDormant() {
		return nil
	}
	full := ledger.New(*st.l.Sale())
	full.RaiseCeiling(st.l.Ceiling())
	if _, err := s.restore(ctx, full, s.opts.Now()); err != nil {
		return s.unavailable(err)
	}
	if err := full.Verify(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	st.l.Adopt(full)
	return nil
}
