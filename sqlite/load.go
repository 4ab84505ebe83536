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
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Loading at start. Each sale in service is loaded on its own: from the
// ledger image the last clean stop wrote, and the orders and settles
// after it (image.go), or else by indexed scans of all its orders
// (restoreJoined). A sale that has ended and
// holds no reserved order decides nothing any more but replays, so it is
// left dormant: its figures come from one aggregate over its orders, and
// its orders stay on disk (Order, Orders and findKeys read them there), so
// thousands of past sales cost neither memory nor the time to load them.
// Steering one (UpdateSale, which may reopen it) loads it whole first
// (wake).

// load rebuilds every ledger from the database, taking each sale's from
// the ledger image where withImage and the image holds it (image.go). It
// returns the image it used, if any.
func (s *Store) load(ctx context.Context, withImage bool) (*image, error) {
	sales, err := s.Sales(ctx)
	if err != nil {
		return nil, err
	}
	ceilings, err := ceilings(ctx, s.w)
	if err != nil {
		return nil, err
	}
	if err := s.orphans(ctx); err != nil {
		return nil, err
	}
	var (
		img     *image
		settles map[string][]settle
	)
	if withImage {
		img = s.readImage(ctx, sales)
	}
	if img != nil {
		if settles, err = s.settlesAfter(ctx, img); err != nil {
			return nil, err
		}
	}
	now := s.opts.Now()
	restored := 0
	for _, sale := range sales {
		l, dormant, err := s.newLedger(ctx, s.w, sale, ceilings[sale.ID], now)
		if err != nil {
			return nil, err
		}
		if !dormant {
			var (
				n    int
				done bool
			)
			if im, ok := img.sale(sale.ID); ok {
				if n, done, err = s.fromImage(ctx, l, im, settles[sale.ID], img.lastSeq, now); err != nil {
					return nil, err
				}
				if done {
					s.imaged++
					s.imageRecs += l.Records()
				}
			}
			if !done {
				if n, err = s.restore(ctx, l, now, 0); err != nil {
					return nil, err
				}
			}
			restored += n
		}
		if err := l.Verify(); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		s.sales[sale.ID] = &saleState{l: l}
	}
	if restored >= bigLoad {
		// The scan's garbage (a few strings per row) would otherwise stay
		// resident until the scavenger gets to it, minutes later; the
		// collection is cheap, the ledgers holding no pointers.
		debug.FreeOSMemory()
	}
	return img, nil
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

// newLedger checks sale and returns its empty ledger, raised to its limit
// ceiling, and whether it is dormant (doze, read on db): the start of both
// a load and a background image's replay.
func (s *Store) newLedger(ctx context.Context, db source, sale surge.Sale, ceiling int64, now time.Time) (*ledger.Sale, bool, error) {
	if err := checkSale(sale); err != nil {
		return nil, false, fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	l := ledger.New(sale)
	l.RaiseCeiling(ceiling)
	if sale.Window(now) != surge.CodeEnded {
		return l, false, nil
	}
	dormant, err := doze(ctx, db, l)
	return l, dormant, err
}

// doze makes l dormant if its sale holds no reserved order, from one
// aggregate of its orders on db (they are checked when a wake loads them).
func doze(ctx context.Context, db source, l *ledger.Sale) (bool, error) {
	var reserved, sold int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status = 'reserved'),
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

// restore replays every order of l's sale with a seq above after into
// it. Only live orders' keys and the window's are kept; older ones are
// looked up on disk when used (findKeys).
//
// It reads each order as one text value, its columns joined by unitSep
// (restoreJoined): database/sql and the driver allocate and convert each
// column of each row, which made reading the columns one by one half the
// cost of a start (docs/benchmarks.md, issue 14). A row that does not
// split exactly has the sale read again column by column (restoreRows),
// which names what is wrong with it, as it always did.
func (s *Store) restore(ctx context.Context, l *ledger.Sale, now time.Time, after int64) (int, error) {
	n, err := s.restoreJoined(ctx, l, now, after)
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
// none), joined by unitSep.
//
// Three goroutines share the work. The sale's orders are cut by seq into
// ranges of about rangeOrders; two scanners (scanJoined) step SQLite
// through alternate ranges, each on a connection of its own, and parse
// the rows; the caller checks and restores them range after range, so in
// seq order, as one scan would hand them over. SQLite's stepping is the
// larger half of a start and one connection runs on one core: two halve
// it (docs/benchmarks.md, 2026-12-04, evening). Each scanner runs ahead of
// the caller by at most its channel's batches.
//
// It presizes l's indexes from a count of the sale's orders (an index
// scan, which also gives the ranges), so that they are made once instead
// of rehashed as they grow.
//
// It reads through the writer's connection and one of the readers', or
// through srcs when given (one transaction, for a snapshot).
func (s *Store) restoreJoined(ctx context.Context, l *ledger.Sale, now time.Time, after int64, srcs ...source) (int, error) {
	sale := *l.Sale()
	// Against the largest limit the sale ever had: an order may predate a
	// lowered one.
	rules := sale
	rules.PerUserLimit = l.Ceiling()
	keysAfter := now.Add(-s.opts.IdempotencyTTL)
	var (
		total  int
		lo, hi sql.NullInt64
	)
	if len(srcs) == 0 {
		srcs = []source{s.w, s.r}
	}
	if err := srcs[len(srcs)-1].QueryRowContext(ctx, `SELECT count(*), min(seq), max(seq) FROM orders WHERE sale_id = ? AND seq > ?`,
		sale.ID, after).Scan(&total, &lo, &hi); err != nil {
		return 0, fmt.Errorf("sqlite: count orders of %s: %w", sale.ID, err)
	}
	if total == 0 {
		return 0, nil
	}
	l.Grow(total)
	ranges := seqRanges(lo.Int64, hi.Int64, total)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// A sale of one range (most sales) needs no second scanner.
	dbs := srcs[:min(len(srcs), len(ranges))]
	free := make(chan []surge.Order, len(dbs)*(scanAhead+2))
	for range cap(free) {
		free <- make([]surge.Order, 0, restoreBatch)
	}
	outs := make([]chan piece, len(dbs))
	for i, db := range dbs {
		outs[i] = make(chan piece, scanAhead)
		g.Go(func() error { return scanJoined(gctx, db, sale.ID, ranges, i, len(dbs), free, outs[i]) })
	}
	// fail stops the scanners and waits for them to end before restore
	// returns; a scanner's own error comes first.
	fail := func(err error) (int, error) {
		cancel()
		if serr := g.Wait(); serr != nil && !errors.Is(serr, context.Canceled) {
			return 0, serr
		}
		return 0, err
	}
	n := 0
	for k := range ranges {
		for end := false; !end; {
			p, ok := <-outs[k%len(outs)]
			if !ok { // the scanner stopped early: its error says why
				if err := g.Wait(); err != nil {
					return 0, err
				}
				return fail(fmt.Errorf("sqlite: the scan of %s's orders ended early", sale.ID))
			}
			for i := range p.batch {
				if err := checkOrder(&rules, p.batch[i]); err != nil {
					return fail(fmt.Errorf("sqlite: %s: %w", s.path, err))
				}
			}
			l.RestoreAll(p.batch, keysAfter)
			n += len(p.batch)
			free <- p.batch[:0]
			end = p.end
		}
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return n, nil
}

// restoreBatch orders make a batch a scanner hands over; a scanner runs at
// most scanAhead batches ahead of the restore, and ranges hold about
// rangeOrders orders: enough that the scanners and the restore seldom
// wait for each other, few enough to stay in the caches.
const (
	restoreBatch = 512
	scanAhead    = 16
	rangeOrders  = 4096
)

// source is what a load reads through: the store's pools, or the one
// transaction of a background image, which must see a single snapshot of
// the database (image.go).
type source interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// piece is a batch of a range, the range's last if end.
type piece struct {
	batch []surge.Order
	end   bool
}

// seqRange is the orders of a sale whose seq is in [lo, hi].
type seqRange struct{ lo, hi int64 }

// seqRanges cuts [lo, hi], holding n orders, into ranges of about
// rangeOrders orders each, if the sale's orders are spread evenly over
// it (a sale sold alone is; sales sold together interleave).
func seqRanges(lo, hi int64, n int) []seqRange {
	k := max(1, (n+rangeOrders-1)/rangeOrders)
	width := (hi - lo + 1 + int64(k) - 1) / int64(k)
	out := make([]seqRange, 0, k)
	for a := lo; a <= hi; a += width {
		out = append(out, seqRange{a, min(a+width-1, hi)})
	}
	return out
}

// scanJoined reads, on db, the orders of sale saleID in ranges first,
// first+step, ... into the batches it takes from free, and sends them on
// out, which it closes when it returns. The orders' strings share each
// row's one string.
func scanJoined(ctx context.Context, db source, saleID string, ranges []seqRange, first, step int, free <-chan []surge.Order, out chan<- piece) error {
	defer close(out)
	stmt, err := db.PrepareContext(ctx, `SELECT id || char(31) || user_id || char(31) || quantity || char(31) || status
		|| char(31) || created_at || char(31) || expires_at || char(31) || coalesce(idempotency_key, '')
		FROM orders WHERE sale_id = ? AND seq BETWEEN ? AND ? ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("sqlite: load orders of %s: %w", saleID, err)
	}
	defer stmt.Close()
	var batch []surge.Order
	send := func(end bool) error {
		select {
		case out <- piece{batch, end}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case batch = <-free:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case batch = <-free:
	case <-ctx.Done():
		return ctx.Err()
	}
	for k := first; k < len(ranges); k += step {
		if err := scanRange(ctx, stmt, saleID, ranges[k], &batch, send); err != nil {
			return err
		}
		if err := send(true); err != nil {
			return err
		}
	}
	return nil
}

// scanRange reads the orders of one range into *batch, handing each full
// batch to send.
func scanRange(ctx context.Context, stmt *sql.Stmt, saleID string, r seqRange, batch *[]surge.Order, send func(end bool) error) error {
	rows, err := stmt.QueryContext(ctx, saleID, r.lo, r.hi)
	if err != nil {
		return fmt.Errorf("sqlite: load orders of %s: %w", saleID, err)
	}
	defer rows.Close()
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
		if *batch = append(*batch, o); len(*batch) < cap(*batch) {
			continue
		}
		if err := send(false); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: load orders of %s: %w", saleID, err)
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
	if _, err := s.restore(ctx, full, s.opts.Now(), 0); err != nil {
		return s.unavailable(err)
	}
	if err := full.Verify(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	st.l.Adopt(full)
	return nil
}
