package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/datasync"
)

// MarkName is the high-water mark file inside the data directory.
const MarkName = "surge.hwm"

// ErrBehind marks a database that holds less than the store had confirmed.
var ErrBehind = errors.New("database is behind what it confirmed")

// ErrDamaged marks a database SQLite's quick check fails, or that holds a
// row Surge never writes.
var ErrDamaged = errors.New("database is damaged")

// The high-water mark lets a start tell a database that lost confirmed
// commits (a truncated or deleted WAL, an older copy of surge.db) from one
// that is whole. SQLite cannot: a WAL cut short just ends earlier.
//
// What it counts: the store's progress, the number of changes it has ever
// committed — sales created, orders inserted and orders settled (moved out
// of reserved). Rows are never deleted and an order leaves reserved at most
// once, so progress is a pure function of the database,
//
//	count(sales) + count(orders) + count(orders whose status is not reserved),
//
// it never goes down, and every commit raises it. Tracking it costs the
// writer an addition, the database no extra page.
//
// How it is kept: after a commit returned (so after its fsync), the marker
// goroutine writes the new progress to surge.hwm and fdatasyncs it, beside
// the next group commits rather than before any answer, so a 201 still
// waits for one fsync, and at most once per markEvery (100 ms), so the disk
// does not flush twice per commit. The mark therefore never exceeds what is
// durable in the database — a whole database is never refused — and lags
// it by the commits of the last markEvery or so (plus the one write in
// progress); Close writes it up to date.
//
// The guarantee: a start refuses a database whose progress is below the
// mark, i.e. one that lost any commit the mark had seen. Losing only the
// commits newer than the mark (the tail the lag leaves) is not detected;
// losing anything older is. Two slots written in turn, each with a
// checksum, keep a torn write from destroying the previous mark.
type guard struct {
	lock *dirLock
	mark *markFile

	progress atomic.Int64 // changes committed; the writer raises it
	markMu   sync.Mutex   // one mark write at a time
	marked   int64        // progress the mark file holds, under markMu
	kick     chan struct{}
	stopMark chan struct{}
	markDone chan struct{}
}

// committed raises the progress by what group changed once its commit
// returned, and wakes the marker.
func (s *Store) committed(group []*commit) {
	var n int64
	for _, c := range group {
		if c.sale != nil {
			n++
		}
		n += int64(len(c.inserts) + len(c.updates))
	}
	s.g.progress.Add(n)
	select {
	case s.g.kick <- struct{}{}:
	default: // a wake-up is already pending; it reads the latest progress
	}
}

// markEvery is the least time between two writes of the mark. Each write
// is an fdatasync of its own, and written after every group commit it
// doubled the flushes the disk serves per commit: under a reserve-heavy
// load it cost about a sixth of the CPU per reservation
// (docs/benchmarks.md). A commit's 201 never waits for the mark.
const markEvery = 100 * time.Millisecond

// marker writes the mark after commits, off the commit path, at most once
// per markEvery: kicks in between coalesce into the next write, which
// covers every commit returned by then. Close writes the final mark.
func (s *Store) marker() {
	defer close(s.g.markDone)
	wait := time.NewTimer(markEvery)
	wait.Stop() // armed below, when a write comes too soon after the last
	defer wait.Stop()
	var last time.Time
	for {
		select {
		case <-s.g.stopMark:
			return
		case <-s.g.kick:
		}
		if d := markEvery - time.Since(last); d > 0 {
			wait.Reset(d)
			select {
			case <-s.g.stopMark:
				return
			case <-wait.C:
			}
		}
		// A failed write is not fatal: the mark lags, the next
		// write retries.
		_ = s.flushMark()
		last = time.Now()
	}
}

// flushMark makes the mark hold the progress committed so far.
func (s *Store) flushMark() error {
	s.g.markMu.Lock()
	defer s.g.markMu.Unlock()
	v := s.g.progress.Load()
	if v <= s.g.marked {
		return nil
	}
	if err := s.g.mark.write(v); err != nil {
		return err
	}
	s.g.marked = v
	return nil
}

// progressOf computes the progress a database holds; a database without
// Surge's tables (a new or emptied one) holds none.
func progressOf(ctx context.Context, db source) (int64, error) {
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sales', 'orders')`).Scan(&tables); err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if tables < 2 {
		return 0, nil
	}
	var n int64
	err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sales) + (SELECT count(*) FROM orders)
		+ (SELECT count(*) FROM orders WHERE status <> 'reserved')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count changes: %w", err)
	}
	return n, nil
}

// checkFile runs the two passes over the whole database that a start
// after a crash makes before trusting it (the quick check, then the
// progress count) and returns the progress.
func checkFile(ctx context.Context, db *sql.DB, path string) (int64, error) {
	if err := quickCheck(ctx, db, path); err != nil {
		return 0, err
	}
	progress, err := progressOf(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return progress, nil
}

// fileCheck is checkFile running beside the load on a query-only
// connection of its own: the quick check is the larger half of a start
// after a crash (docs/benchmarks.md), and the load reads the same file
// meanwhile without waiting for it. The connection reads the file through
// a memory map (mapped), which spares the check a pread system call and a
// copy per page: 40 % of the quick check's and half of the progress
// count's CPU with a million orders (docs/benchmarks.md, 2026-12-04, night).
type fileCheck struct {
	g        errgroup.Group
	cancel   context.CancelFunc
	progress int64 // once g.Wait returned nil
}

func startCheck(ctx context.Context, path string) *fileCheck {
	ctx, cancel := context.WithCancel(ctx)
	c := &fileCheck{cancel: cancel}
	c.g.Go(func() error {
		db, err := openToCheck(path, checkMap)
		if err != nil {
			return fmt.Errorf("sqlite: open %s to check it: %w", path, err)
		}
		faulted, err := mapped(path, func() (err error) {
			c.progress, err = checkFile(ctx, db, path)
			return err
		})
		if !faulted {
			// After a fault SQLite may have stopped holding its own
			// locks; the connection is left as it is, unused.
			db.Close()
		}
		return err
	})
	return c
}

// wait returns the check's progress, or why the database is refused.
func (c *fileCheck) wait() (int64, error) {
	defer c.cancel()
	if err := c.g.Wait(); err != nil {
		return 0, err
	}
	return c.progress, nil
}

// stop abandons the check and waits for its connection to close.
func (c *fileCheck) stop() {
	c.cancel()
	_ = c.g.Wait()
}

// checkMap is the mmap_size of the start's check: all of any database
// SQLite maps (it caps the size at 2 GiB minus 64 KiB and reads what lies
// beyond with pread).
const checkMap = 1 << 31

// openToCheck opens the database at path on one connection that can
// read but never write, for the quick check, reading through a memory
// map of up to mapSize bytes (0: none). query_only rather than mode=ro:
// on a read-only connection SQLite's quick check skips the tables' CHECK
// constraints.
func openToCheck(path string, mapSize int64) (*sql.DB, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)&_pragma=mmap_size("+strconv.FormatInt(mapSize, 10)+")")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// mapped runs read, which reads path through a memory map on the calling
// goroutine, and turns a fault in the map into ErrDamaged rather than a
// crash of the process: where pread returns an I/O error, a mapped page
// the disk cannot read, or one past the end of a file cut short while it
// is read, raises SIGBUS. faulted says the fault happened; SQLite was then
// stopped mid-operation, so its connection must not be used or closed.
// Only the start's check reads through a map: the store's own connections
// live as long as the process, and a fault there would leave the writer
// holding SQLite's locks.
func mapped(path string, read func() error) (faulted bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fault, ok := r.(interface{ Addr() uintptr })
		if !ok {
			panic(r)
		}
		faulted = true
		err = fmt.Errorf("sqlite: %w: reading %s failed at address %#x (a disk I/O error, or the file cut short while it was read): %v",
			ErrDamaged, path, fault.Addr(), r)
	}()
	return false, read()
}

// quickCheck runs SQLite's quick check (page structure, b-trees, free
// list; not index contents, which a full integrity_check would compare at
// several times the cost) and refuses anything but "ok".
func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		return checkFailed(ctx, path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return fmt.Errorf("sqlite: quick_check of %s: %w", path, err)
		}
		problems = append(problems, p)
	}
	if err := rows.Err(); err != nil {
		return checkFailed(ctx, path, err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return fmt.Errorf("sqlite: %w: quick_check of %s failed: %s; restore it from a backup", ErrDamaged, path, strings.Join(problems, "; "))
	}
	return nil
}

// checkFailed is the error of a quick check that did not run to its end:
// the file's damage, unless the caller stopped it first (SIGINT or SIGTERM
// during a start or a `surge backup`, a deadline), which says nothing
// about the file. Told "damaged", an operator might restore an older
// backup over a sound database. Damage SQLite reported stays damage even
// if the context ended meanwhile: told "stopped", the operator would retry
// rather than restore.
func checkFailed(ctx context.Context, path string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !sqliteDamage(err) {
		// The driver reports any failure of a call once its context has
		// ended as the context's error alone, SQLite's hidden: a file that
		// is no database at all is told by its first bytes. Damage past
		// them waits for a check that runs to its end.
		if notADatabase(path) {
			return fmt.Errorf("sqlite: %w: %s is not a SQLite database (it does not begin with SQLite's header); restore it from a backup", ErrDamaged, path)
		}
		if !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return fmt.Errorf("sqlite: quick_check of %s stopped before it finished: %w", path, err)
	}
	if sqliteNoAccess(err) {
		// Not the file's damage: told "damaged; restore it", an operator
		// would replace a sound database with an older copy.
		return fmt.Errorf("sqlite: cannot open %s, or the %s-wal and %s-shm beside it, to check it: %w; "+
			"this says nothing of damage: each must be a file this user can read and write (a server run once as another user, such as root, leaves them its own)",
			path, FileName, FileName, err)
	}
	return fmt.Errorf("sqlite: %w: quick_check of %s: %w", ErrDamaged, path, err)
}

// sqliteNoAccess reports whether err is SQLite's failure to open or write
// a file of the database (SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_READONLY):
// a file it may not use, or no file where one must be, never damage.
func sqliteNoAccess(err error) bool {
	var se *driver.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY:
		return true
	}
	return false
}

// sqliteHeader begins every SQLite database file
// (https://www.sqlite.org/fileformat.html, "The Database Header").
const sqliteHeader = "SQLite format 3\x00"

// notADatabase reports whether the file at path holds bytes but does not
// begin with sqliteHeader (an empty file is a new database).
func notADatabase(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, b)
	if n == 0 {
		return false
	}
	return err != nil || string(b) != sqliteHeader
}

// sqliteDamage reports whether err is SQLite's own finding of a damaged
// or unreadable file (SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR), which
// no cancellation causes.
func sqliteDamage(err error) bool {
	var se *driver.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR:
		return true
	}
	return false
}

// checkBehind refuses a database whose progress, have, is below the mark.
func checkBehind(dir, path string, have, mark int64) error {
	if have < mark {
		return fmt.Errorf("sqlite: %w: %s holds %d changes (sales, orders and settlements) but %s recorded %d confirmed: "+
			"confirmed orders are missing (a truncated or deleted %s-wal, or an older copy of the database); "+
			"restore the lost files, or, if this database is an intended restore from a backup, remove %s to accept it as it is",
			ErrBehind, path, have, filepath.Join(dir, MarkName), mark, FileName, filepath.Join(dir, MarkName))
	}
	return nil
}

// checkNotLinked refuses a database file that is a symbolic link. SQLite
// follows the link and keeps the WAL and its shared memory beside the file
// it points to, while the store looks for them, and writes its mark, seal
// and image, in the data directory: the start would fail on a missing WAL
// at best. The directory itself may be a link; the file may not.
func checkNotLinked(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil // a missing database is created; other errors come later
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		target = "an unreachable file: " + err.Error()
	}
	return fmt.Errorf("sqlite: %s is a symbolic link to %s: SQLite keeps the database's WAL beside the file a link points to, where Surge's checks do not look; "+
		"serve from %s itself (--data-dir %s), or move the whole data directory and link the directory instead",
		path, target, filepath.Dir(target), filepath.Dir(target))
}

// checkPresent refuses to start an empty store where the mark says orders
// were confirmed: opening a missing database would create a new one.
func checkPresent(dir, path string, mark int64) error {
	if mark == 0 {
		return nil
	}
	fi, err := os.Stat(path)
	var state string
	switch {
	case errors.Is(err, os.ErrNotExist):
		state = "missing"
	case err != nil:
		return fmt.Errorf("sqlite: %w", err)
	case fi.Size() == 0:
		state = "empty"
	default:
		return nil
	}
	markPath := filepath.Join(dir, MarkName)
	// The WAL left beside it holds every commit since the last checkpoint.
	// SQLite deletes the WAL of a missing or empty database when it opens
	// it, and applies it to any other database put in its place: either
	// plain advice would lose those commits.
	if w, err := os.Stat(path + "-wal"); err == nil && w.Size() > 0 {
		return fmt.Errorf("sqlite: %w: %s is %s but %s recorded %d confirmed changes, and %s-wal beside it (%d bytes) holds the commits not yet copied into it: "+
			"put back the %s this WAL belongs to (moved or renamed), which recovers them; only to restore a backup or to start an empty store, "+
			"first move %s-wal and %s-shm aside (SQLite would delete the WAL, or apply it to the restored file), then restore it, or remove %s",
			ErrBehind, path, state, markPath, mark, path, w.Size(), FileName, path, path, markPath)
	}
	return fmt.Errorf("sqlite: %w: %s is %s but %s recorded %d confirmed changes; restore the database, or remove %s to start an empty store",
		ErrBehind, path, state, markPath, mark, markPath)
}

// checkSale refuses a stored sale Surge could not have created.
func checkSale(sl surge.Sale) error {
	if !surge.ValidID(sl.ID) || sl.Stock < 1 || sl.Stock > surge.MaxStock ||
		sl.PerUserLimit < 1 || sl.PerUserLimit > sl.Stock ||
		sl.HoldSeconds < 1 || sl.HoldSeconds > surge.MaxHoldSeconds {
		return fmt.Errorf("%w: sale %q has values Surge never writes (stock %d, per_user_limit %d, hold_seconds %d)",
			ErrDamaged, sl.ID, sl.Stock, sl.PerUserLimit, sl.HoldSeconds)
	}
	return nil
}

// checkOrder refuses a stored order Surge could not have written: loading
// it anyway would guess what it holds (an unknown status would return its
// units to sale; a negative quantity would add stock).
func checkOrder(sl *surge.Sale, o surge.Order) error {
	switch o.Status {
	case surge.OrderReserved, surge.OrderPaid, surge.OrderCancelled, surge.OrderExpired:
	default:
		return fmt.Errorf("%w: order %q of sale %s has unknown status %q", ErrDamaged, o.ID, o.SaleID, o.Status)
	}
	if !surge.ValidID(o.ID) {
		return fmt.Errorf("%w: order %q of sale %s has a malformed id", ErrDamaged, o.ID, o.SaleID)
	}
	// The rules every purchase passed before it became an order.
	p := surge.Purchase{UserID: o.UserID, Quantity: o.Quantity, IdempotencyKey: o.IdempotencyKey}
	if err := surge.ValidatePurchase(sl, p); err != nil {
		return fmt.Errorf("%w: order %q of sale %s (user %q, quantity %d) breaks the sale's rules: %w",
			ErrDamaged, o.ID, o.SaleID, o.UserID, o.Quantity, err)
	}
	return nil
}

// markFile is the high-water mark on disk: two slots, at offsets 0 and
// markSlot, written in turn. Each holds
//
//	"SURGEHWM" | progress (uint64, little endian) | CRC-32C of the 16 bytes before
//
// and the valid slot with the larger progress is the mark. A slot sits in
// one sector, so a write is not torn in practice; if it were, the other
// slot still holds the previous mark.
type markFile struct {
	f    *os.File
	next int64 // offset of the slot the next write goes to
}

const (
	markMagic  = "SURGEHWM"
	markRecLen = 20
	markSlot   = 512
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openMark opens (creating if needed) the mark file of dir and returns it
// with the mark it holds: 0 for a new, empty file.
func openMark(dir string) (*markFile, int64, error) {
	path := filepath.Join(dir, MarkName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	buf := make([]byte, markSlot+markRecLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, 0, fmt.Errorf("sqlite: read %s: %w", path, err)
	}
	if n == 0 {
		// New, or created by a start that crashed before its first write
		// (which happens before anything is committed). Its name must be
		// durable before the mark in it means anything.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, 0, err
		}
		return &markFile{f: f}, 0, nil
	}
	m := &markFile{f: f}
	best, ok := int64(-1), false
	for _, off := range []int64{0, markSlot} {
		if v, valid := parseMark(buf, off, n); valid && v > best {
			best, ok = v, true
			m.next = markSlot - off // the other slot
		}
	}
	if !ok {
		f.Close()
		return nil, 0, fmt.Errorf("sqlite: %w: high-water mark %s is unreadable; remove it to accept the database as it is", ErrDamaged, path)
	}
	return m, best, nil
}

func parseMark(buf []byte, off int64, n int) (int64, bool) {
	if int(off)+markRecLen > n {
		return 0, false
	}
	rec := buf[off : off+markRecLen]
	if string(rec[:8]) != markMagic || crc32.Checksum(rec[:16], castagnoli) != binary.LittleEndian.Uint32(rec[16:]) {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(rec[8:16])
	return int64(v), v <= 1<<62
}

// write records v durably in the slot not holding the current mark.
func (m *markFile) write(v int64) error {
	var rec [markRecLen]byte
	copy(rec[:], markMagic)
	binary.LittleEndian.PutUint64(rec[8:], uint64(v))
	binary.LittleEndian.PutUint32(rec[16:], crc32.Checksum(rec[:16], castagnoli))
	if _, err := m.f.WriteAt(rec[:], m.next); err != nil {
		return fmt.Errorf("sqlite: write high-water mark: %w", err)
	}
	// The file keeps its size: fdatasync needs no journal commit for it.
	if err := datasync.File(m.f); err != nil {
		return fmt.Errorf("sqlite: sync high-water mark: %w", err)
	}
	m.next = markSlot - m.next
	return nil
}

func (m *markFile) close() error {
	if m == nil {
		return nil
	}
	return m.f.Close()
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", dir, err)
	}
	return nil
}

// take locks dir and reads its mark, refusing a missing or empty database
// the mark says held orders. On error nothing stays held.
func (g *guard) take(ctx context.Context, dir, path string, wait time.Duration) (marked int64, err error) {
	if err := checkNotLinked(path); err != nil {
		return 0, err
	}
	if g.lock, err = lockDir(ctx, dir, wait); err != nil {
		return 0, err
	}
	if g.mark, marked, err = openMark(dir); err == nil {
		err = checkPresent(dir, path, marked)
	}
	if err == nil {
		// After checkPresent, which tells a missing database from an
		// empty one: this creates it.
		err = g.lock.lockDatabase(path)
	}
	if err != nil {
		g.release()
		return 0, err
	}
	g.marked = marked
	g.kick = make(chan struct{}, 1)
	g.stopMark = make(chan struct{})
	g.markDone = make(chan struct{})
	return marked, nil
}

// release closes the mark and then drops the lock, last, so another
// process opens the directory only once this one is done with it.
func (g *guard) release() error {
	err := g.mark.close()
	return errors.Join(err, g.lock.unlock())
}
