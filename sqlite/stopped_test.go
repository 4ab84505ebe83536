package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// stoppedFiles are the data directory's files a read-only command must
// leave as it found them.
var stoppedFiles = []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm", sqlite.SealName, sqlite.LockName}

// soldTwenty opens a store in a new directory, its checkpointer idle (the
// commits stay in the WAL), with sale s1 and 20 orders sold.
func soldTwenty(t *testing.T) (string, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dir, noCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 20)
	return dir, s
}

// copied copies the files names of dir into a new directory, as a copy
// of a data directory (or a crash) would leave them, and returns it.
func copied(t *testing.T, dir string, names ...string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// readS1 reads dir as surge reconcile does (a Reader: the sales, sale
// s1's orders, the payments) and returns how many sales and orders it read.
func readS1(t *testing.T, dir string) (sales, orders int, err error) {
	t.Helper()
	r, err := sqlite.OpenReader(t.Context(), dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	all, _, err := r.Sales(t.Context())
	if err == nil {
		err = r.Orders(t.Context(), "s1", func(surge.Order) error { orders++; return nil })
	}
	if err == nil {
		err = r.Payments(t.Context(), func(surge.Payment) error { return nil })
	}
	return len(all), orders, err
}

// TestReadOnlyCommandsWriteNothingInStoppedDir: surge reconcile (Reader),
// surge backup (Backup) and an upgrade's version check (CheckVersion)
// read a data directory; on one no server holds they must leave its files
// as they were, not create the WAL and the -shm a clean stop removed (or
// the -shm a copy of the directory left out), nor recover a killed
// server's WAL into its -shm (the next start does, under the directory's
// lock), and still read every order.
func TestReadOnlyCommandsWriteNothingInStoppedDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		// crash: stopped without Close, as a copy of these files taken
		// while it served: the commits are in the WAL
		crash []string
	}{
		{"after a clean stop", nil},
		{"a WAL without its -shm", []string{sqlite.FileName, sqlite.FileName + "-wal"}},
		{"a killed server's WAL and -shm", []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			live, s := soldTwenty(t)
			dir := live
			if tc.crash != nil {
				dir = copied(t, live, tc.crash...)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			before := fileHashes(t, dir, stoppedFiles)
			if (before[sqlite.FileName+"-shm"] == "missing") != (len(tc.crash) < 3) || (before[sqlite.FileName+"-wal"] == "missing") != (tc.crash == nil) {
				t.Fatalf("setup: %v", before)
			}

			sales, orders, err := readS1(t, dir)
			if err != nil || sales != 1 || orders != 20 {
				t.Errorf("Reader: %d sales, %d orders, %v; want 1 and 20", sales, orders, err)
			}
			if err := sqlite.CheckVersion(ctx, dir); err != nil {
				t.Errorf("CheckVersion: %v", err)
			}
			info, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "backup.db"))
			if err != nil || info.Sales != 1 || info.Orders != 20 {
				t.Errorf("Backup = %+v, %v; want 1 sale and 20 orders", info, err)
			}

			after := fileHashes(t, dir, stoppedFiles)
			for _, name := range stoppedFiles {
				if before[name] != after[name] {
					t.Errorf("reading the stopped data directory (reconcile, backup, version check) changed %s: before %s, after %s; want it left as it was",
						name, before[name], after[name])
				}
			}
		})
	}
}

// TestReaderOfStoppedDirWhenServerStarts: a Reader of a stopped data
// directory reads it without the directory's lock and without SQLite's
// shared memory, so a server may start on it meanwhile and rewrite the
// database file (a checkpoint). The reads after must not mix that
// server's orders into the instant the Reader was opened at: they give
// the orders as they were, or fail saying the directory changed.
func TestReaderOfStoppedDirWhenServerStarts(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := sqlite.OpenReader(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A server starts, sells 30 more, and stops: its close folds its WAL
	// into surge.db.
	s = open(t, dir)
	for i := range 30 {
		out, _, err := s.Reserve(ctx, "s1", []surge.Purchase{{UserID: fmt.Sprintf("late%d", i), Quantity: 1}}, surge.At(t0))
		if err != nil || out[0].Err != nil {
			t.Fatalf("Reserve: %v, %+v", err, out)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var orders int
	err = r.Orders(ctx, "s1", func(surge.Order) error { orders++; return nil })
	if err == nil && orders != 20 {
		t.Fatalf("the Reader opened on 20 orders read %d after a server started and sold 30 more; want the 20 of its instant, or an error", orders)
	}
	if err != nil && !strings.Contains(err.Error(), "started on the data directory") {
		t.Fatalf("Orders after a server started on the directory: %v; want an error saying so", err)
	}
}

// TestStoppedDirWithWALManySales: a data directory whose WAL is there
// without its -shm (a copy of a crashed server's directory that left the
// -shm out) is read through SQLite's read-only VFS, which cannot create
// files. SQLite writes a sort larger than its cache (2 MB) to temporary
// files, made through the connection's VFS: reconcile's list of sales,
// sorted by creation, then failed with "disk I/O error" once a directory
// held some ten thousand sales, where reading it the usual way worked.
func TestStoppedDirWithWALManySales(t *testing.T) {
	ctx := t.Context()
	live, s := soldTwenty(t)
	defer s.Close()
	// 30,000 more sales, written beside the store into its WAL (no
	// checkpoint runs): some 6 MB to sort.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(live, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	const more = 30000
	_, err = db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?)
		INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency, starts_at, ends_at, hold_seconds, created_at, waiting_room, paused)
		SELECT 'bulk-' || i, name || ' ' || hex(randomblob(40)), stock, per_user_limit, price_cents, currency, starts_at, ends_at, hold_seconds, created_at, waiting_room, paused
		FROM sales, n WHERE id = 's1'`, more)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := copied(t, live, sqlite.FileName, sqlite.FileName+"-wal")

	r, err := sqlite.OpenReader(ctx, dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	sales, _, err := r.Sales(ctx)
	r.Close()
	if err != nil || len(sales) != more+1 {
		t.Errorf("Reader.Sales of a stopped directory with a WAL and no -shm, %d sales: %d sales, %v; want them all", more+1, len(sales), err)
	}
	info, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "backup.db"))
	if err != nil || info.Sales != more+1 || info.Orders != 20 {
		t.Errorf("Backup = %+v, %v; want %d sales and 20 orders", info, err, more+1)
	}
	if after := fileHashes(t, dir, stoppedFiles); after[sqlite.FileName+"-shm"] != "missing" {
		t.Errorf("reading the stopped directory created its -shm: %v", after)
	}
}

// TestReadThroughSymlinkedDatabase: a data directory whose surge.db is a
// symbolic link (a layout `surge serve` refuses, TestSymlinkedDatabaseRefusedClearly,
// but a backup job or a reconcile may still name it while a server serves
// the link's target) keeps no -wal or -shm: SQLite keeps them beside the
// target. Taken for a stopped directory, it was read without the WAL, so
// without the commits the server had not yet checkpointed, and a server's
// checkpoint during the read went unseen. It must read as a running
// server's readers do: every committed order.
func TestReadThroughSymlinkedDatabase(t *testing.T) {
	ctx := t.Context()
	live, s := soldTwenty(t)
	defer s.Close()
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(live, sqlite.FileName), filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Fatal(err)
	}

	sales, orders, err := readS1(t, dir)
	if err != nil || sales != 1 || orders != 20 {
		t.Errorf("Reader through a symlinked surge.db of a serving store: %d sales, %d orders, %v; want 1 and 20", sales, orders, err)
	}
	info, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "backup.db"))
	if err != nil || info.Sales != 1 || info.Orders != 20 {
		t.Errorf("Backup through a symlinked surge.db of a serving store = %+v, %v; want 1 sale and 20 orders", info, err)
	}
}
