// Package sqlite is the embedded backend: live state in memory (package
// ledger) and orders in a SQLite database in WAL mode, written by a single
// writer that group-commits every pending change with one fsync.
//
// SQLite (the pure-Go modernc.org/sqlite driver, so the binary needs no C
// toolchain) was chosen because it is durable with synchronous=FULL, lets
// readers stream exports while the writer commits, and lets operators
// inspect orders with the stock sqlite3 shell.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/ledger"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside the data directory.
const FileName = "surge.db"

// Options tune the store; the zero value is sensible.
type Options struct {
	// MaxCommitRows caps the rows one group commit writes (default 8192),
	// bounding its latency.
	MaxCommitRows int
	// IdempotencyTTL is how long the key of an order no longer live stays
	// in memory after the order's creation (default 24h); older keys are
	// answered from disk.
	IdempotencyTTL time.Duration
	// Now is the clock of that window at load and of the expiry job
	// (default time.Now).
	Now func() time.Time
	// NoExpiry stops the store's own expiry job: holds then end only when
	// the owner calls Expire (tests that drive their own clock).
	NoExpiry bool
	// Logger receives the expiry job's events (default slog.Default()).
	Logger *slog.Logger

	// Tests shorten these (export_test.go); zero takes the defaults.
	checkpointEvery time.Duration // checkpointInterval
	idleAfter       time.Duration // idleTruncate
}

// DefaultIdempotencyTTL is Options.IdempotencyTTL's default.
const DefaultIdempotencyTTL = 24 * time.Hour

// Store implements surge.Store on SQLite.
type Store struct {
	w, r    *sql.DB
	cp      *sql.DB // checkpoints, off the commit path
	stopCP  chan struct{}
	cpDone  chan struct{}
	path    string
	g       *guard // the data directory's lock and high-water mark (integrity.go)
	opts    Options
	commits chan *commit
	done    chan struct{}

	mu    sync.RWMutex
	sales map[string]*saleState

	ids surge.OrderIDs

	// Owned by the writer goroutine.
	inserts map[int]*sql.Stmt
	update  *sql.Stmt
	args    []any
	orders  []surge.Order

	// released is called with a sale's id once expired holds gave its
	// units back (OnRelease); stopExpiry ends the expiry job.
	released   atomic.Pointer[func(saleID string)]
	stopExpiry chan struct{}
	expiryDone chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool
	// failed is the error of the writer's last commit when it failed and
	// none succeeded since (a full disk, an I/O error): Ready reports it.
	failed  atomic.Pointer[error]
	stats   Stats
	statsMu sync.Mutex
}

// saleState pairs a sale's ledger with the lock that serialises its
// changes. The lock is held across the durable commit, so no decision is
// ever made on state that could still be rolled back.
type saleState struct {
	mu sync.Mutex
	l  *ledger.Sale
	// archived is set, under mu, once the sale's row says archived; the
	// state is then being dropped (see ArchiveSale).
	archived bool
}

// Stats counts group commits, for benchmarks and metrics.
type Stats struct {
	Commits int64         // transactions (each one fsync)
	Rows    int64         // rows written by them
	Calls   int64         // store calls merged into them
	Busy    time.Duration // time spent writing and committing them
}

const schema = `
CREATE TABLE IF NOT EXISTS sales (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	stock          INTEGER NOT NULL CHECK (stock > 0),
	per_user_limit INTEGER NOT NULL CHECK (per_user_limit > 0),
	price_cents    INTEGER NOT NULL,
	currency       TEXT NOT NULL,
	starts_at      TEXT NOT NULL,
	ends_at        TEXT,
	hold_seconds   INTEGER NOT NULL,
	created_at     TEXT NOT NULL,
	waiting_room   TEXT -- JSON of surge.WaitingRoom; NULL: none
) STRICT;
CREATE TABLE IF NOT EXISTS orders (
	seq             INTEGER PRIMARY KEY,
	id              TEXT NOT NULL UNIQUE,
	sale_id         TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	quantity        INTEGER NOT NULL CHECK (quantity > 0),
	status          TEXT NOT NULL CHECK (status IN ('reserved','paid','cancelled','expired')),
	idempotency_key TEXT,
	created_at      TEXT NOT NULL,
	expires_at      TEXT NOT NULL,
	updated_at      TEXT -- set by the transition out of reserved
) STRICT;
CREATE INDEX IF NOT EXISTS orders_by_sale ON orders (sale_id, seq);
CREATE INDEX IF NOT EXISTS orders_dead_keys ON orders (sale_id, user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL AND status IN ('cancelled','expired');
`

// upgrade brings a database made by an older version up to the schema:
// CREATE TABLE IF NOT EXISTS leaves an existing table as it was.
func upgrade(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('sales') WHERE name = 'waiting_room'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE sales ADD COLUMN waiting_room TEXT`); err != nil {
			return err
		}
	}
	return nil
}

// There is deliberately no unique index on (sale_id, user_id,
// idempotency_key): the ledger enforces one order per key under the sale's
// lock, and an index keyed by random user ids would dirty a random page per
// order, several times the cost of the insert itself. load checks the
// invariant when it rebuilds the ledger. Keys older than the idempotency
// window live on disk only, and only dead orders' keys ever get there, so
// orders_dead_keys indexes those alone: a reservation never writes to it
// (it costs a cancel or an expiry one index entry, off the purchase path),
// and findKeys looks a key up there under the sale's lock.

// Open opens (creating if needed) the database in dir and loads every
// sale's live state from it.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.MaxCommitRows <= 0 {
		opts.MaxCommitRows = 8192
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	g := &guard{}
	marked, err := g.take(dir, path)
	if err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			g.release()
		}
	}()
	// synchronous=FULL makes every commit fsync the WAL: a commit that
	// returned survives power loss, which is what a 201 promises.
	// wal_autocheckpoint(0): the writer never checkpoints inline, where a
	// checkpoint (copying pages to the database file and fsyncing it) would
	// stall every purchase waiting on that commit; checkpointer does it
	// in the background on its own connection. journal_size_limit: the
	// WAL is cut back to that size when it restarts after a checkpoint, so
	// a spike's peak does not stay on disk.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(" + walSizeLimit + ")&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1) // the single writer
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// Before anything is written: a damaged database, or one behind what
	// it had confirmed, is refused as found.
	if err := quickCheck(ctx, w, path); err != nil {
		w.Close()
		return nil, err
	}
	progress, err := checkBehind(ctx, w, dir, path, marked)
	if err != nil {
		w.Close()
		return nil, err
	}
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: create schema in %s: %w", path, err)
	}
	if err := errors.Join(upgrade(ctx, w), upgradeArchive(ctx, w)); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: upgrade schema in %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open reader: %w", err)
	}
	r.SetMaxOpenConns(8)
	// No busy timeout: a TRUNCATE checkpoint waiting on a reader would hold
	// back the writer meanwhile; busy, it gives up and retries later.
	cp, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_pragma=journal_size_limit("+walSizeLimit+")")
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	cp.SetMaxOpenConns(1)
	s := &Store{
		w: w, r: r, cp: cp, opts: opts, path: path, g: g,
		stopCP: make(chan struct{}), cpDone: make(chan struct{}),
		stopExpiry: make(chan struct{}), expiryDone: make(chan struct{}),
		commits: make(chan *commit, 1024),
		done:    make(chan struct{}),
		sales:   make(map[string]*saleState),
		inserts: make(map[int]*sql.Stmt),
	}
	if err := s.load(ctx); err != nil {
		w.Close()
		r.Close()
		cp.Close()
		return nil, err
	}
	s.update, err = w.PrepareContext(ctx, `UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = 'reserved'`)
	if err != nil {
		w.Close()
		r.Close()
		cp.Close()
		return nil, fmt.Errorf("sqlite: prepare update: %w", err)
	}
	// A new directory, or one of a version without marks, gets its mark
	// now; from here on it only rises.
	s.g.progress.Store(progress)
	if err := s.flushMark(); err != nil {
		w.Close()
		r.Close()
		cp.Close()
		return nil, err
	}
	opened = true
	go s.writer()
	go s.checkpointer()
	go s.marker()
	if opts.NoExpiry {
		close(s.expiryDone)
	} else {
		go s.expirer()
	}
	return s, nil
}

// expiryInterval is how often the expiry job releases the holds that ran
// out: a unit comes back at most this late.
const expiryInterval = time.Second

// expirer is the store's expiry job.
func (s *Store) expirer() {
	defer close(s.expiryDone)
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopExpiry:
			return
		case <-t.C:
			if _, err := s.Expire(context.Background(), s.opts.Now()); err != nil {
				s.opts.Logger.Error("expire holds", "err", err)
			}
		}
	}
}

// OnRelease implements surge.Releaser: fn hears of every sale whose
// expired holds gave units back.
func (s *Store) OnRelease(fn func(saleID string)) {
	if fn == nil {
		s.released.Store(nil)
		return
	}
	s.released.Store(&fn)
}

// checkpointInterval is how often the WAL is copied into the database file.
// Shorter keeps the WAL (and recovery after a crash) small; each pass is a
// PASSIVE checkpoint, which never blocks the writer or readers.
const checkpointInterval = 500 * time.Millisecond

// idleTruncate is how long the writer must have been idle before the
// checkpointer truncates the WAL to zero bytes. A TRUNCATE checkpoint
// holds back the writer while it runs, so it waits for a lull; under load
// journal_size_limit bounds what a restarted WAL keeps.
const idleTruncate = 2 * time.Second

// walSizeLimit is the journal_size_limit, in bytes.
const walSizeLimit = "8388608" // 8 MiB

func (s *Store) checkpointer() {
	defer close(s.cpDone)
	every, idle := cmp.Or(s.opts.checkpointEvery, checkpointInterval), cmp.Or(s.opts.idleAfter, idleTruncate)
	t := time.NewTicker(every)
	defer t.Stop()
	seen, changed, truncated := s.g.progress.Load(), time.Now(), false
	for {
		select {
		case <-s.stopCP:
			return
		case now := <-t.C:
			if p := s.g.progress.Load(); p != seen {
				seen, changed, truncated = p, now, false
			}
			mode := "PASSIVE"
			if !truncated && now.Sub(changed) >= idle {
				mode = "TRUNCATE"
			}
			var busy, logFrames, done int
			// Errors are not fatal: the WAL keeps every commit durable; it
			// only grows until a later pass succeeds.
			err := s.cp.QueryRow(`PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logFrames, &done)
			if mode == "TRUNCATE" && err == nil && busy == 0 {
				truncated = true
			}
		}
	}
}

// load rebuilds every ledger from the database.
func (s *Store) load(ctx context.Context) error {
	sales, err := s.Sales(ctx)
	if err != nil {
		return err
	}
	for _, sale := range sales {
		if err := checkSale(sale); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		s.sales[sale.ID] = &saleState{l: ledger.New(sale)}
	}
	// Archived sales' orders stay on disk only.
	rows, err := s.w.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE sale_id NOT IN (SELECT sale_id FROM archived_sales) ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("sqlite: load orders: %w", err)
	}
	// Only live orders' keys and the window's are loaded; older ones are
	// looked up on disk when used (findKeys).
	keysAfter := s.opts.Now().Add(-s.opts.IdempotencyTTL)
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return err
		}
		st, ok := s.sales[o.SaleID]
		if !ok {
			return fmt.Errorf("sqlite: order %s belongs to unknown sale %s", o.ID, o.SaleID)
		}
		if err := checkOrder(st.l.Sale(), o); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		st.l.Restore(o, keysAfter)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: load orders: %w", err)
	}
	for _, st := range s.sales {
		if err := st.l.Verify(); err != nil {
			return fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
	}
	return nil
}

func (s *Store) sale(id string) *saleState {
	s.mu.RLock()
	st := s.sales[id]
	s.mu.RUnlock()
	return st
}

// CreateSale implements surge.Store.
func (s *Store) CreateSale(ctx context.Context, sale surge.Sale) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sales[sale.ID]; ok {
		return surge.ErrSaleExists
	}
	if err := s.submit(&commit{sale: &sale}); err != nil {
		return err
	}
	s.sales[sale.ID] = &saleState{l: ledger.New(sale)}
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
	rows, err := db.QueryContext(ctx, `SELECT id, name, stock, per_user_limit, price_cents, currency,
		starts_at, ends_at, hold_seconds, created_at, waiting_room FROM sales `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("sqlite: list sales: %w", err))
	}
	defer rows.Close()
	var out []surge.Sale
	for rows.Next() {
		var (
			sl              surge.Sale
			starts, created string
			ends, room      sql.NullString
		)
		if err := rows.Scan(&sl.ID, &sl.Name, &sl.Stock, &sl.PerUserLimit, &sl.PriceCents, &sl.Currency,
			&starts, &ends, &sl.HoldSeconds, &created, &room); err != nil {
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

// Reserve implements surge.Store.
func (s *Store) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, now time.Time) ([]surge.Outcome, int64, error) {
	st := s.sale(saleID)
	if st == nil {
		return nil, 0, surge.ErrSaleNotFound
	}
	// The engine validated these already; the store checks again because
	// it is the last guard of the invariants (a quantity below one would
	// add stock), and the check costs nanoseconds next to the commit.
	for _, p := range batch {
		if err := surge.ValidatePurchase(st.l.Sale(), p); err != nil {
			return nil, 0, err
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Checked under the sale lock, which Close holds while it sets closed:
	// a batch of rejections must not be answered by a closed store either.
	if s.closed.Load() {
		return nil, 0, surge.ErrUnavailable
	}
	if err := s.findKeys(ctx, st, batch); err != nil {
		return nil, st.l.Remaining(), err
	}
	outs, t := st.l.Decide(batch, now, func() string { return s.ids.Next(now) })
	if len(t.Orders) > 0 {
		if err := s.submit(&commit{inserts: t.Orders}); err != nil {
			st.l.Rollback(t)
			return nil, st.l.Remaining(), err
		}
		st.l.Commit(t)
	}
	return outs, st.l.Remaining(), nil
}

// keyQuery finds a key's order on disk. Only dead orders' keys ever leave
// memory, so only they are looked for: the partial index orders_dead_keys
// serves the query because it repeats the index's condition.
const keyQuery = `SELECT ` + orderColumns + ` FROM orders
	WHERE sale_id = ? AND user_id = ? AND idempotency_key = ? AND status IN ('cancelled','expired')
	ORDER BY seq LIMIT 1`

// findKeys looks on disk for the batch's keys that memory may have dropped
// (older than the window) and puts back those it finds, so that Decide
// answers them as replays: a key never buys twice, however old. The
// caller holds the sale's lock, so every commit of the sale is on disk.
func (s *Store) findKeys(ctx context.Context, st *saleState, batch []surge.Purchase) error {
	for _, p := range batch {
		if p.IdempotencyKey == "" {
			continue
		}
		if _, ks := st.l.LookupKey(p.UserID, p.IdempotencyKey); ks != surge.KeyMaybe {
			continue
		}
		row := s.r.QueryRowContext(ctx, keyQuery, st.l.Sale().ID, p.UserID, p.IdempotencyKey)
		o, err := scanOrder(row)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return s.unavailable(fmt.Errorf("sqlite: look up idempotency key: %w", err))
		}
		st.l.Recall(o)
	}
	return nil
}

// Cancel implements surge.Store.
func (s *Store) Cancel(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderCancelled, surge.ErrNotCancellable, now)
}

// Pay implements surge.Store.
func (s *Store) Pay(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderPaid, surge.ErrNotPayable, now)
}

// settle moves one reserved order to status, durably, then in memory.
func (s *Store) settle(ctx context.Context, orderID string, status surge.OrderStatus, notReserved error, now time.Time) (surge.Order, error) {
	o, err := s.Order(ctx, orderID)
	if err != nil {
		return surge.Order{}, err
	}
	st := s.sale(o.SaleID)
	if st == nil {
		// An archived sale's orders are all settled.
		return surge.Order{}, notReserved
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	live, ok := st.l.Reserved(orderID)
	// A hold ends at ExpiresAt, not when Expire next runs: past it the
	// order is expired, and Expire returns its units.
	if !ok || !live.ExpiresAt.After(now) {
		return surge.Order{}, notReserved
	}
	if err := s.submit(&commit{updates: []update{{id: orderID, status: status, at: now}}}); err != nil {
		return surge.Order{}, err
	}
	st.l.Settle(orderID, status)
	live.Status = status
	return live, nil
}

// Expire moves every reserved order whose hold ended at or before now to
// expired, returning its units, and returns the orders it expired. The
// store's expiry job calls it every second on its clock; tests that
// disabled the job (Options.NoExpiry) call it with theirs. The OnRelease
// callback hears of each sale that got units back, before Expire returns.
func (s *Store) Expire(ctx context.Context, now time.Time) ([]surge.Order, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	s.mu.RLock()
	states := make([]*saleState, 0, len(s.sales))
	for _, st := range s.sales {
		states = append(states, st)
	}
	s.mu.RUnlock()
	var expired []surge.Order
	var errs []error
	for _, st := range states {
		st.mu.Lock()
		n := 0
		for {
			due := st.l.Due(now, s.opts.MaxCommitRows)
			if len(due) == 0 {
				break
			}
			ups := make([]update, len(due))
			for i, o := range due {
				ups[i] = update{id: o.ID, status: surge.OrderExpired, at: now}
			}
			if err := s.submit(&commit{updates: ups}); err != nil {
				st.l.Requeue(due)
				errs = append(errs, err)
				break
			}
			for _, o := range due {
				st.l.Settle(o.ID, surge.OrderExpired)
				o.Status = surge.OrderExpired
				expired = append(expired, o)
			}
			n += len(due)
		}
		// The sweep of old keys rides on the expiry pass: memory holds
		// live orders' keys and the window's, and disk the rest.
		st.l.Forget(now.Add(-s.opts.IdempotencyTTL))
		st.mu.Unlock()
		if n > 0 {
			// After the unlock: the listener reads the remaining stock.
			id := st.l.Sale().ID
			s.opts.Logger.Info("holds expired", "sale", id, "orders", n)
			if fn := s.released.Load(); fn != nil {
				(*fn)(id)
			}
		}
	}
	return expired, errors.Join(errs...)
}

const orderColumns = `id, sale_id, user_id, quantity, status, idempotency_key, created_at, expires_at`

type scanner interface{ Scan(...any) error }

func scanOrder(sc scanner) (surge.Order, error) {
	var (
		o                surge.Order
		status           string
		key              sql.NullString
		created, expires string
	)
	if err := sc.Scan(&o.ID, &o.SaleID, &o.UserID, &o.Quantity, &status, &key, &created, &expires); err != nil {
		return o, fmt.Errorf("sqlite: scan order: %w", err)
	}
	o.Status = surge.OrderStatus(status)
	o.IdempotencyKey = key.String
	var err error
	if o.CreatedAt, err = parseTime(created); err != nil {
		return o, err
	}
	if o.ExpiresAt, err = parseTime(expires); err != nil {
		return o, err
	}
	return o, nil
}

// Order implements surge.Store.
func (s *Store) Order(ctx context.Context, id string) (surge.Order, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id)
	o, err := scanOrder(row)
	if errors.Is(err, sql.ErrNoRows) {
		return surge.Order{}, surge.ErrOrderNotFound
	}
	return o, s.unavailable(err)
}

// Orders implements surge.Store. It reads a consistent snapshot while the
// writer goes on committing.
func (s *Store) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if s.sale(saleID) == nil {
		if archived, err := s.archivedSale(ctx, saleID); err != nil || !archived {
			return cmp.Or(err, error(surge.ErrSaleNotFound))
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = ? ORDER BY seq`, saleID)
	if err != nil {
		return s.unavailable(fmt.Errorf("sqlite: export orders: %w", err))
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
	if err := rows.Err(); err != nil {
		return s.unavailable(fmt.Errorf("sqlite: export orders: %w", err))
	}
	return nil
}

// Remaining implements surge.Store.
func (s *Store) Remaining(ctx context.Context, saleID string) (int64, error) {
	if s.closed.Load() {
		return 0, surge.ErrUnavailable
	}
	st := s.sale(saleID)
	if st == nil {
		return 0, surge.ErrSaleNotFound
	}
	return st.l.Remaining(), nil
}

// LookupKey implements surge.Store.
func (s *Store) LookupKey(saleID, userID, key string) (surge.Order, surge.KeyState) {
	st := s.sale(saleID)
	if st == nil {
		return surge.Order{}, surge.KeyUnknown
	}
	return st.l.LookupKey(userID, key)
}

// Stats returns group-commit counters.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Ready reports whether the store takes purchases: it is open and its
// writer's last commit did not fail (a full disk, an I/O error). Memory
// alone answers, so a readiness probe may call it as often as it likes; a
// commit that succeeds again makes the store ready again.
func (s *Store) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return errors.New("sqlite: store closed")
	}
	if err := s.failed.Load(); err != nil {
		return fmt.Errorf("sqlite: the last commit failed: %w", *err)
	}
	return nil
}

// Held returns the units a user holds in a sale (for tests and checks).
func (s *Store) Held(saleID, userID string) int64 {
	st := s.sale(saleID)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.l.Held(userID)
}

// Keys counts the idempotency keys a sale holds in memory (for tests and
// checks; it walks them all).
func (s *Store) Keys(saleID string) int {
	st := s.sale(saleID)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.l.Keys()
}

// Close stops the writer after it has committed everything submitted, then
// closes the database. Calls after Close fail with surge.ErrUnavailable.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopExpiry)
		<-s.expiryDone
		// Taking every sale lock waits for in-flight mutations.
		s.mu.Lock()
		ids := slices.Collect(maps.Keys(s.sales))
		for _, id := range ids {
			s.sales[id].mu.Lock()
		}
		s.closed.Store(true)
		close(s.commits)
		<-s.done
		for _, id := range ids {
			s.sales[id].mu.Unlock()
		}
		s.mu.Unlock()
		close(s.stopCP)
		<-s.cpDone
		close(s.g.stopMark)
		<-s.g.markDone
		markErr := s.flushMark() // every commit is in: the mark holds them all
		// The writer's connection closes last and, as the last one, folds
		// the WAL into the database file.
		err = errors.Join(markErr, s.cp.Close(), s.r.Close(), s.w.Close(), s.g.release())
	})
	return err
}

// unavailable turns a failure of a closed store into ErrUnavailable, the
// documented answer after Close: the database handles are closed by then
// and would otherwise leak database/sql's own error.
func (s *Store) unavailable(err error) error {
	if err != nil && s.closed.Load() {
		return surge.ErrUnavailable
	}
	return err
}

func formatTime(t time.Time) string { return surge.FormatTime(t) }

// parseWaitingRoom reads the stored JSON of a waiting room, refusing
// anything this version did not write.
func parseWaitingRoom(s string) (*surge.WaitingRoom, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var wr surge.WaitingRoom
	if err := dec.Decode(&wr); err != nil {
		return nil, fmt.Errorf("bad stored waiting room %q: %w", s, err)
	}
	return &wr, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}
