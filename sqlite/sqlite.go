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
	"context"
	"database/sql"
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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/ctxlock"
	"github.com/surgehq/surge/ledger"
	"github.com/surgehq/surge/metrics"
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
	// Metrics, when set, gets the group commit's counters
	// (surge_store_commits_total, surge_store_committed_rows_total,
	// surge_store_commit_failures_total).
	Metrics prometheus.Registerer

	// NoEvents writes no order events: nothing publishes them (surge
	// serve without --nats-url), and rows nobody reads would pile up in
	// the outbox and cost every commit a B-tree insert per change. Events
	// already in the outbox stay for a later start that publishes.
	NoEvents bool

	// ImageMin is the orders the sales in service must keep in memory
	// for Close to write the ledger image (image.go); 0 takes 50,000, a
	// negative value never writes one.
	ImageMin int

	// LockWait is how long Open waits for another process to release the
	// data directory (the old process of an upgrade, draining); 0 fails
	// at once with ErrLocked.
	LockWait time.Duration

	// Tests shorten these (export_test.go); zero takes the defaults.
	checkpointEvery time.Duration // checkpointInterval
	idleAfter       time.Duration // idleTruncate
	restartFrames   int           // walRestartFrames
}

// DefaultIdempotencyTTL is Options.IdempotencyTTL's default.
const DefaultIdempotencyTTL = 24 * time.Hour

// Store implements surge.Store on SQLite.
type Store struct {
	w, r    *sql.DB
	cp      *sql.DB       // checkpoints, off the commit path
	catchUp chan struct{} // the checkpointer asks the writer to finish a pass (checkpoint.go)
	stopCP  chan struct{}
	cpDone  chan struct{}
	path    string
	file    os.FileInfo // surge.db as Open found it (seal.go)
	wal     os.FileInfo // surge.db-wal as Open found it (writer.go, inPlace)
	g       *guard      // the data directory's lock and high-water mark (integrity.go)
	opts    Options
	commits chan *commit
	done    chan struct{}
	// exports holds a slot per order export under way (orders.go).
	exports chan struct{}

	mu    sync.RWMutex
	sales map[string]*saleState
	// createMu runs sale creations one at a time, across their commit
	// (sales.go); Close takes it before mu.
	createMu ctxlock.Mutex
	// payMu applies payment events one at a time (payments.go).
	payMu sync.Mutex

	ids surge.OrderIDs

	// Owned by the writer goroutine.
	inserts        map[int]*sql.Stmt
	update         *sql.Stmt
	settles        int64             // the number of the last settle (image.go)
	eventStmts     map[int]*sql.Stmt // outbox.go
	reservedEvents *sql.Stmt
	args           []any
	orders         []surge.Order
	events         []event

	// rel hears of the orders the expiry job expired (OnRelease).
	// stopExpiry ends the expiry job.
	rel        surge.Releases
	stopExpiry chan struct{}
	expiryDone chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool
	closeMu   sync.RWMutex // a send to commits against its close (writer.go)
	// failed is the error of the writer's last commit when it failed and
	// none succeeded since (a full disk, an I/O error): Ready reports it.
	failed atomic.Pointer[error]
	// probing is set while a probe commit Ready started is under way.
	probing atomic.Bool
	// opened is when Open made the store, on the monotonic clock;
	// writingSince is when, after it (nanoseconds, 0: never), the writer
	// began the write under way, 0 while it has none: Ready reports a
	// write stuck past commitStall.
	opened       time.Time
	writingSince atomic.Int64
	// sawFailure is whether any commit of this store failed (a full disk,
	// an I/O error), even if later ones succeeded: Close then leaves no
	// seal, and the next start checks the file in full.
	sawFailure atomic.Bool
	meter      *metrics.Commits // nil without Options.Metrics
	// checked is whether Open ran the quick check and the progress count
	// (no seal vouched for the file).
	checked bool
	// imaged is the sales Open took from the ledger image (image.go).
	imaged int
	// The imager goroutine refreshes the image (image.go); imagedAt is the
	// progress of the last image and imageRecs its records, its own after
	// Open.
	imagedAt  int64
	imageRecs int
	// current is the progress of the image on disk when it is the
	// database as it stands (the imager wrote it, or Open read it, and
	// nothing changed since); -1 when none is. Close then keeps it.
	current   atomic.Int64
	stopImage context.CancelFunc
	imageDone chan struct{}
}

// saleState pairs a sale's ledger with the lock that serialises its
// changes. The lock is held across the durable commit, so no decision is
// ever made on state that could still be rolled back.
type saleState struct {
	mu ctxlock.Mutex
	l  *ledger.Sale
	// archived is set, under mu, once the sale's row says archived; the
	// state is then being dropped (see ArchiveSale).
	archived bool
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
	waiting_room   TEXT, -- JSON of surge.WaitingRoom; NULL: none
	-- Steering a live sale (steer.go): the pause, the largest per-user
	-- limit the sale ever had (NULL: per_user_limit; buyers may hold up to
	-- it from before a lowered limit), and when an operator last changed it.
	paused         INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
	limit_ceiling  INTEGER CHECK (limit_ceiling >= per_user_limit),
	updated_at     TEXT,
	-- A pause stops a waiting room's clock (surge.Sale.Stopped): when the
	-- pause in force began (NULL: not paused), and how long the pauses that
	-- ended stopped it, in nanoseconds.
	paused_at      TEXT,
	paused_for_ns  INTEGER NOT NULL DEFAULT 0 CHECK (paused_for_ns >= 0)
) STRICT;
CREATE TABLE IF NOT EXISTS orders (
	seq             INTEGER PRIMARY KEY,
	id              TEXT NOT NULL UNIQUE,
	sale_id         TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	quantity        INTEGER NOT NULL CHECK (quantity > 0),
	status          TEXT NOT NULL CHECK (` + statusCheck + `),
	idempotency_key TEXT,
	created_at      TEXT NOT NULL,
	expires_at      TEXT NOT NULL,
	updated_at      TEXT, -- set by the transition out of reserved
	settled         INTEGER -- that transition's number (image.go)
) STRICT;
CREATE INDEX IF NOT EXISTS orders_by_sale ON orders (sale_id, seq);
DROP INDEX IF EXISTS orders_dead_keys;
CREATE INDEX IF NOT EXISTS orders_settled_keys ON orders (sale_id, user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL AND status <> 'reserved';
`

// schemaDB is a database or a transaction in one, for the schema's
// statements.
type schemaDB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion is the version of the database's layout this build
// writes, kept in SQLite's user_version. A version that changes the layout
// so that an older one would read it wrong (a rule a new column holds, a
// new status) raises it; an older build then refuses the database
// (checkVersion) rather than serve it by the rules it knows, which would
// sell what the newer one forbids. Databases of versions before it hold 0
// and are stamped when upgraded.
const schemaVersion = 1

// ErrNewer marks a database a newer version of Surge wrote.
var ErrNewer = errors.New("database written by a newer version of Surge")

// checkVersion refuses a database whose layout is newer than this build's.
func checkVersion(ctx context.Context, db source, path string) error {
	var v int64
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: read the schema version of %s: %w", path, err)
	}
	if v > schemaVersion {
		return fmt.Errorf("sqlite: %w: %s has schema version %d, this build knows up to %d; run that version of surge (or a newer one) on it, or restore a backup this version wrote",
			ErrNewer, path, v, schemaVersion)
	}
	return nil
}

// fileURI is the SQLite URI ("file:" + path, options to follow after a
// '?') that names the file at path whatever it holds: in a URI '?' starts
// the options, '#' ends the path and "%HH" stands for a byte, so those
// three are escaped (https://www.sqlite.org/uri.html). A data directory
// holding them otherwise sent SQLite to another file. url.URL would also
// escape what SQLite takes as it is, and no library writes this form.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// versionUnchanged is checkVersion at a start, which holds the data
// directory's lock, through a connection that writes to none of the
// database's files (openUnwritten): a start refused as older than the
// database must leave them as the newer version left them (after a
// crash, its last commits in the WAL). A read-write connection would not:
// the last one to close folds the WAL into surge.db and removes it and
// the -shm; and a read-only one still creates a missing WAL and rebuilds
// the -shm.
func versionUnchanged(ctx context.Context, path string) error {
	db, _, closeDB, err := openUnwritten(path)
	if err != nil {
		return err
	}
	defer closeDB()
	return checkVersion(ctx, db, path)
}

// createSchema creates Surge's tables and indexes where missing and
// upgrades those of older versions; on a database that has them all it
// changes nothing.
func createSchema(ctx context.Context, db schemaDB) error {
	if _, err := db.ExecContext(ctx, schema+outboxSchema); err != nil {
		return err
	}
	if err := errors.Join(upgrade(ctx, db), upgradeArchive(ctx, db), upgradePayments(ctx, db), upgradeChecks(ctx, db), upgradeImage(ctx, db)); err != nil {
		return err
	}
	return stampVersion(ctx, db)
}

// stampVersion records schemaVersion in a database that holds a lower one
// (a new database, or an older version's just upgraded), in the upgrade's
// transaction.
func stampVersion(ctx context.Context, db schemaDB) error {
	var v int64
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v >= schemaVersion {
		return nil
	}
	_, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion))
	return err
}

// statusCheck and eventCheck are the values an order's status and an
// outbox event may take, written as comparisons joined by OR rather than
// as an IN list: SQLite codes an IN list of more than two constants in a
// CHECK as a temporary index it builds anew for every row it checks (the
// statement's one-time setup does not apply to table constraints), so
// every inserted order, every status change and every row of a quick
// check paid for four or five index inserts (docs/benchmarks.md,
// 2026-12-04, evening). The comparisons accept the same values.
const (
	statusCheck = `status = 'reserved' OR status = 'paid' OR status = 'cancelled' OR status = 'expired'`
	eventCheck  = `event = 'reserved' OR event = 'paid' OR event = 'cancelled' OR event = 'expired' OR event = 'refund_due'`
)

// checkRewrites are the CHECKs older versions wrote as IN lists, and the
// equivalent ones that replace them.
var checkRewrites = []struct{ table, old, new string }{
	{"orders", `CHECK (status IN ('reserved','paid','cancelled','expired'))`, `CHECK (` + statusCheck + `)`},
	{"outbox", `CHECK (event IN ('reserved','paid','cancelled','expired','refund_due'))`, `CHECK (` + eventCheck + `)`},
}

// upgradeChecks replaces, in the tables of an older version, the CHECKs
// of checkRewrites. SQLite has no statement that changes a constraint; its
// documented way to change one that leaves the rows' format alone
// (https://sqlite.org/lang_altertable.html, "Making Other Kinds Of Table
// Schema Changes") is to edit the table's CREATE statement in
// sqlite_schema and raise the schema version, inside a transaction. The
// new CHECK accepts exactly the rows the old one did, so no row can fail
// it. db must be a transaction: writable_schema is per connection.
func upgradeChecks(ctx context.Context, db schemaDB) (err error) {
	var n int
	for _, r := range checkRewrites {
		var c int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ? AND instr(sql, ?) > 0`,
			r.table, r.old).Scan(&c); err != nil {
			return err
		}
		n += c
	}
	if n == 0 {
		return nil
	}
	var version int64
	if err := db.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&version); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `PRAGMA writable_schema = ON`); err != nil {
		return err
	}
	defer func() {
		if _, offErr := db.ExecContext(ctx, `PRAGMA writable_schema = OFF`); offErr != nil {
			err = errors.Join(err, offErr)
		}
	}()
	for _, r := range checkRewrites {
		if _, err := db.ExecContext(ctx, `UPDATE sqlite_schema SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ?`,
			r.old, r.new, r.table); err != nil {
			return fmt.Errorf("rewrite the CHECK of %s: %w", r.table, err)
		}
	}
	// SQLite rereads the schema, and every other connection learns of the
	// change, because this number moved.
	_, err = db.ExecContext(ctx, fmt.Sprintf(`PRAGMA schema_version = %d`, version+1))
	return err
}

// initSchema runs createSchema in one transaction of its own.
func initSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := createSchema(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// schemaWhole reports whether createSchema would change nothing in db. It
// runs it in a transaction it rolls back and compares SQLite's schema
// version, which every change of the schema raises, and the user_version
// (stampVersion), before and after.
// Nothing is committed either way.
func schemaWhole(ctx context.Context, db *sql.DB) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	// The user_version too: stamping it is a write (stampVersion).
	const versions = `SELECT (SELECT schema_version FROM pragma_schema_version), (SELECT user_version FROM pragma_user_version)`
	var before, after [2]int64
	if err := tx.QueryRowContext(ctx, versions).Scan(&before[0], &before[1]); err != nil {
		return false, err
	}
	if err := createSchema(ctx, tx); err != nil {
		return false, err
	}
	if err := tx.QueryRowContext(ctx, versions).Scan(&after[0], &after[1]); err != nil {
		return false, err
	}
	return before == after, nil
}

// upgrade brings a database made by an older version up to the schema:
// CREATE TABLE IF NOT EXISTS leaves an existing table as it was.
func upgrade(ctx context.Context, db schemaDB) error {
	for _, c := range []struct{ table, name, def string }{
		{"sales", "waiting_room", "TEXT"},
		{"sales", "paused", "INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1))"},
		{"sales", "limit_ceiling", "INTEGER CHECK (limit_ceiling >= per_user_limit)"},
		{"sales", "updated_at", "TEXT"},
		{"outbox", "status", "TEXT"},
		{"sales", "paused_at", "TEXT"},
		{"sales", "paused_for_ns", "INTEGER NOT NULL DEFAULT 0 CHECK (paused_for_ns >= 0)"},
	} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.name+` `+c.def); err != nil {
			return err
		}
		if c.name == "paused_at" {
			// A sale paused by an older version counts its pause from the
			// operator's last change, at or after the pause: a window is
			// never given back more than the pause took.
			if _, err := db.ExecContext(ctx, `UPDATE sales SET paused_at = coalesce(updated_at, ?) WHERE paused = 1`,
				formatTime(time.Now())); err != nil {
				return err
			}
		}
	}
	return nil
}

// There is deliberately no unique index on (sale_id, user_id,
// idempotency_key): the ledger enforces one order per key under the sale's
// lock, and an index keyed by random user ids would dirty a random page per
// order, several times the cost of the insert itself. load checks the
// invariant when it rebuilds the ledger. Keys older than the idempotency
// window live on disk only, and so do all keys of a dormant sale (ended,
// nothing reserved: load.go); a reserved order's key is always in memory,
// so orders_settled_keys indexes the others alone: a reservation never
// writes to it (a payment, cancel or expiry costs it one index entry, off
// the purchase path), and findKeys looks a key up there under the sale's
// lock.

// Open opens (creating if needed) the database in dir and loads every
// sale's live state from it.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.MaxCommitRows <= 0 {
		opts.MaxCommitRows = 8192
	}
	if opts.ImageMin == 0 {
		opts.ImageMin = defaultImageMin
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
	var commits *metrics.Commits
	if opts.Metrics != nil {
		// Before any file is opened: a refused registration has nothing to undo.
		commits = metrics.NewCommits()
		if err := opts.Metrics.Register(commits); err != nil {
			return nil, fmt.Errorf("sqlite: register metrics: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	g := &guard{}
	marked, err := g.take(ctx, dir, path, opts.LockWait)
	if err != nil {
		return nil, err
	}
	opened := false
	var dbs []*sql.DB // closed, last first, if Open fails
	defer func() {
		if !opened {
			for _, db := range slices.Backward(dbs) {
				db.Close()
			}
			g.release()
		}
	}()
	// Before SQLite opens the file, which creates a WAL beside it.
	progress, clean, sealed, err := readSeal(dir)
	if err != nil {
		return nil, err
	}
	// synchronous=FULL makes every commit fsync the WAL: a commit that
	// returned survives power loss, which is what a 201 promises.
	// wal_autocheckpoint(0): the writer never checkpoints inline, where a
	// checkpoint (copying pages to the database file and fsyncing it) would
	// stall every purchase waiting on that commit; checkpointer does it
	// in the background on its own connection. journal_size_limit: the
	// WAL is cut back to that size when it restarts after a checkpoint, so
	// a spike's peak does not stay on disk.
	dsn := fileURI(path) + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(" + walSizeLimit + ")&_txlock=immediate"
	// Before anything reads the database by this build's layout, or
	// writes to it: a newer version's database is refused as found,
	// byte for byte (versionUnchanged). Any other failure to read the
	// version is the writer's to report, below.
	if err := versionUnchanged(ctx, path); errors.Is(err, ErrNewer) {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	dbs = append(dbs, w)
	w.SetMaxOpenConns(1) // the single writer
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := checkVersion(ctx, w, path); err != nil {
		if !errors.Is(err, ErrNewer) {
			// SQLite cannot read even the header: the checks below would
			// have refused the file as damaged, and said why.
			if qerr := quickCheck(ctx, w, path); qerr != nil {
				return nil, qerr
			}
		}
		return nil, err
	}
	// A start refused above leaves the seal to the version that wrote
	// the database; this one serves it, and takes the seal away before it
	// writes anything.
	if sealed {
		if err := unseal(dir); err != nil {
			return nil, err
		}
	}
	removeTemps(dir)
	// Before anything is written: a damaged database, or one behind what
	// it had confirmed, is refused as found. After a clean shutdown the
	// seal vouches for the file instead of the two passes over it
	// (seal.go). After a crash they run: beside the load (which only
	// reads) when the schema is already whole, so that creating it writes
	// nothing; before anything else when it is not (a new directory, or a
	// database of an older version, whose upgrade would write).
	var pending *fileCheck
	defer func() {
		if pending != nil { // Open failed before it waited for the check
			pending.stop()
		}
	}()
	if !clean {
		whole, err := schemaWhole(ctx, w)
		if err == nil && whole {
			pending = startCheck(ctx, path)
		} else if progress, err = checkFile(ctx, w, path); err != nil {
			return nil, err
		}
	}
	if pending == nil {
		if err := checkBehind(dir, path, progress, marked); err != nil {
			return nil, err
		}
	}
	if err := initSchema(ctx, w); err != nil {
		return nil, fmt.Errorf("sqlite: create or upgrade schema in %s: %w", path, err)
	}
	// The file the writer has open: Close seals it only if surge.db is
	// still this file (seal.go).
	file, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	settles, err := lastSettle(ctx, w)
	if err != nil {
		return nil, err
	}
	// The WAL the writer has open, once it has read the database: a
	// commit goes into it only while surge.db-wal still names it.
	wal, err := os.Stat(path + "-wal")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	r, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open reader: %w", err)
	}
	dbs = append(dbs, r)
	r.SetMaxOpenConns(readerConns)
	// No busy timeout: a TRUNCATE checkpoint waiting on a reader would hold
	// back the writer meanwhile; busy, it gives up and retries later.
	cp, err := sql.Open("sqlite", fileURI(path)+"?_pragma=busy_timeout(0)&_pragma=journal_size_limit("+walSizeLimit+")")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	dbs = append(dbs, cp)
	cp.SetMaxOpenConns(1)
	s := &Store{
		w: w, r: r, cp: cp, opts: opts, path: path, file: file, wal: wal, g: g, meter: commits, checked: !clean, opened: time.Now(),
		stopCP: make(chan struct{}), cpDone: make(chan struct{}), catchUp: make(chan struct{}, 1),
		stopExpiry: make(chan struct{}), expiryDone: make(chan struct{}),
		commits: make(chan *commit, 1024),
		exports: make(chan struct{}, maxExports),
		done:    make(chan struct{}),
		sales:   make(map[string]*saleState),
		inserts: make(map[int]*sql.Stmt),

		eventStmts: make(map[int]*sql.Stmt),
		settles:    settles,
	}
	img, err := s.load(ctx, true)
	if pending != nil {
		// A failed check comes first: damage explains a failed load.
		checked, cerr := pending.wait()
		pending = nil
		if cerr != nil {
			return nil, cerr
		}
		progress = checked
		if berr := checkBehind(dir, path, progress, marked); berr != nil {
			return nil, berr
		}
	}
	if err == nil && img != nil {
		err = s.imageAccounts(ctx, img, progress)
	}
	if err != nil {
		return nil, err
	}
	if s.imaged > 0 {
		opts.Logger.Info("sales from the ledger image", "sales", s.imaged, "file", filepath.Join(dir, ImageName))
		s.imagedAt = img.progress
	}
	s.current.Store(-1)
	if s.imaged > 0 && img.progress == progress {
		s.current.Store(progress)
	}
	s.update, err = w.PrepareContext(ctx, `UPDATE orders SET status = ?, updated_at = ?, settled = ? WHERE id = ? AND status = 'reserved'`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare update: %w", err)
	}
	if s.reservedEvents, err = w.PrepareContext(ctx, reservedEventsSQL); err != nil {
		return nil, fmt.Errorf("sqlite: prepare outbox insert: %w", err)
	}
	// A new directory, or one of a version without marks, gets its mark
	// now; from here on it only rises.
	s.g.progress.Store(progress)
	if err := s.flushMark(); err != nil {
		return nil, err
	}
	opened = true
	go s.writer()
	go s.checkpointer()
	go s.marker()
	imageCtx, stopImage := context.WithCancel(context.Background())
	s.stopImage, s.imageDone = stopImage, make(chan struct{})
	if opts.ImageMin >= 0 {
		go s.imager(imageCtx, opts.ImageMin)
	} else {
		close(s.imageDone)
	}
	if opts.NoExpiry {
		close(s.expiryDone)
	} else {
		go s.expirer()
	}
	return s, nil
}

func (s *Store) sale(id string) *saleState {
	s.mu.RLock()
	st := s.sales[id]
	s.mu.RUnlock()
	return st
}

// Ready reports whether the store takes purchases: it is open, its
// writer's last commit did not fail (a full disk, an I/O error), and no
// write of the writer has been under way for longer than commitStall (a
// disk that neither completes nor fails an fsync: every purchase would
// wait out its timeout). Memory alone answers, so a readiness probe may
// call it as often as it likes; a commit that succeeds again, or the
// stalled one completing, makes the store ready again. While the last
// commit failed, each call also starts a probe commit in the background
// (one at a time) unless one is under way: a node that says it is not
// ready gets no purchase from a load balancer that follows its readiness,
// so it must find out by itself that the disk takes commits again.
func (s *Store) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return errors.New("sqlite: store closed")
	}
	if since := s.writingSince.Load(); since != 0 {
		if d := time.Since(s.opened) - time.Duration(since); d > commitStall {
			return fmt.Errorf("sqlite: a write to %s has been under way for %v: the disk does not answer", s.path, d.Round(time.Millisecond))
		}
	}
	if err := s.failed.Load(); err != nil {
		if s.probing.CompareAndSwap(false, true) {
			go func() {
				defer s.probing.Store(false)
				_ = s.submit(&commit{probe: true})
			}()
		}
		return fmt.Errorf("sqlite: the last commit failed: %w", *err)
	}
	return nil
}

// Close stops the writer after it has committed everything submitted, then
// closes the database. Calls after Close fail with surge.ErrUnavailable.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopImage() // a refresh under way gives up
		<-s.imageDone
		close(s.stopExpiry)
		<-s.expiryDone
		// Taking every sale lock waits for in-flight mutations; createMu,
		// for a creation committing, whose sale the image must hold.
		s.createMu.Lock()
		s.mu.Lock()
		ids := slices.Collect(maps.Keys(s.sales))
		for _, id := range ids {
			s.sales[id].mu.Lock()
		}
		s.closeMu.Lock() // a send waiting for room in the queue gets in first
		s.closed.Store(true)
		close(s.commits)
		s.closeMu.Unlock()
		<-s.done
		if !s.sawFailure.Load() {
			// Every change has stopped. A failed image costs the next
			// start time, never an order: it replays them all.
			// An image of the database as it stands is kept as it is.
			if s.opts.ImageMin < 0 || s.current.Load() != s.g.progress.Load() {
				if ierr := s.writeImage(context.Background(), s.opts.ImageMin); ierr != nil {
					s.opts.Logger.Warn("the next start will replay every order", "err", ierr)
				}
			}
		}
		for _, id := range ids {
			s.sales[id].mu.Unlock()
		}
		s.mu.Unlock()
		s.createMu.Unlock()
		close(s.stopCP)
		<-s.cpDone
		close(s.g.stopMark)
		<-s.g.markDone
		markErr := s.flushMark() // every commit is in: the mark holds them all
		// The writer's connection closes last and, as the last one, folds
		// the WAL into the database file.
		err = errors.Join(markErr, s.cp.Close(), s.r.Close(), s.w.Close())
		if err == nil && !s.sawFailure.Load() {
			// Under the lock, so no other store opens the file meanwhile.
			// A store a commit of which failed leaves no seal: the next
			// start checks the file in full.
			err = seal(filepath.Dir(s.path), s.g.progress.Load(), s.file)
		} else if s.sawFailure.Load() {
			s.opts.Logger.Warn("no seal left: a commit failed while the store served, so the next start checks the file in full")
		}
		err = errors.Join(err, s.g.release())
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
