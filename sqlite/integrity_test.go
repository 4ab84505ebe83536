package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// noCheckpoint keeps every commit in the WAL (as a spike between two
// checkpoints would), so damage to the WAL loses commits.
var noCheckpoint = sqlite.WithTimings(sqlite.Options{NoExpiry: true}, time.Hour, time.Hour)

// sell commits n one-unit orders of sale id, one group commit each, and
// cancels every tenth: inserts and updates both reach the WAL.
func sell(t *testing.T, s *sqlite.Store, id string, n int) {
	t.Helper()
	ctx := t.Context()
	for i := range n {
		out, _, err := s.Reserve(ctx, id, []surge.Purchase{{UserID: fmt.Sprintf("u%d", i), Quantity: 1}}, surge.At(t0))
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("Reserve %d: %+v, %v", i, out, err)
		}
		if i%10 == 0 {
			if _, err := s.Cancel(ctx, out[0].Order.ID, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// copyFiles copies the named files of src that exist into a new directory,
// as a crash (or a copy of a live volume) would leave them.
func copyFiles(t *testing.T, src string, names ...string) string {
	t.Helper()
	dst := t.TempDir()
	for _, n := range names {
		in, err := os.Open(filepath.Join(src, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestRefuseBehind damages copies of a live data directory the ways an
// operator or a bad volume does and checks that Open refuses every copy that
// lost confirmed commits, and opens the intact copy with every order.
func TestRefuseBehind(t *testing.T) {
	const orders = 60
	src, sale := servedWithOrders(t, orders)
	db, wal := sqlite.FileName, sqlite.FileName+"-wal"
	files := []string{db, wal, sqlite.MarkName}

	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string // "" opens; otherwise a part of the error
	}{
		{"intact", func(*testing.T, string) {}, ""},
		{"wal truncated by half", func(t *testing.T, dir string) {
			fi, err := os.Stat(filepath.Join(dir, wal))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(dir, wal), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "behind"},
		{"wal truncated to the last few commits' loss", func(t *testing.T, dir string) {
			fi, err := os.Stat(filepath.Join(dir, wal))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(dir, wal), fi.Size()-3*(24+4096)); err != nil {
				t.Fatal(err)
			}
		}, "behind"},
		{"wal deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, wal)); err != nil {
				t.Fatal(err)
			}
		}, "behind"},
		{"database deleted", func(t *testing.T, dir string) {
			for _, f := range []string{db, wal} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
		}, "missing"},
		{"database emptied", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, wal)); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(dir, db), 0); err != nil {
				t.Fatal(err)
			}
		}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFiles(t, src, files...)
			tc.damage(t, dir)
			s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open of an intact copy: %v", err)
				}
				defer s.Close()
				n := 0
				if err := s.Orders(t.Context(), sale.ID, func(surge.Order) error { n++; return nil }); err != nil || n != orders {
					t.Errorf("intact copy holds %d orders (%v), want %d", n, err, orders)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Open of a damaged copy succeeded; want an error about %q", tc.want)
			}
			if !errors.Is(err, sqlite.ErrBehind) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("Open: %v; want ErrBehind naming %s and %q", err, dir, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			// Refused, the directory is left as it was: a second start
			// refuses again rather than accepting what the first created.
			if _, err2 := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true}); !errors.Is(err2, sqlite.ErrBehind) {
				t.Errorf("second Open: %v; want ErrBehind again", err2)
			}
		})
	}
}

// TestRefuseUnknownRows puts rows Surge never writes into a database (the
// schema's CHECKs switched off, as an old or foreign writer would) and
// checks that Open refuses, naming the row, instead of skipping it.
func TestRefuseUnknownRows(t *testing.T) {
	const cols = `(id, sale_id, user_id, quantity, status, idempotency_key, created_at, expires_at)`
	for _, tc := range []struct {
		name, insert, want string
		keepChecks         bool // leave the schema's CHECKs: quick_check finds the row
	}{
		{"unknown status under the CHECK", `INSERT INTO orders ` + cols + ` VALUES ('o_bad', 's1', 'mallory', 1, 'refunded', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "quick_check", true},
		{"unknown status", `INSERT INTO orders ` + cols + ` VALUES ('o_bad', 's1', 'mallory', 1, 'refunded', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_bad", false},
		{"zero quantity", `INSERT INTO orders ` + cols + ` VALUES ('o_zero', 's1', 'mallory', 0, 'reserved', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_zero", false},
		{"negative quantity", `INSERT INTO orders ` + cols + ` VALUES ('o_neg', 's1', 'mallory', -5, 'paid', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_neg", false},
		{"quantity over the limit", `INSERT INTO orders ` + cols + ` VALUES ('o_big', 's1', 'mallory', 3, 'cancelled', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_big", false},
		{"bad user id", `INSERT INTO orders ` + cols + ` VALUES ('o_user', 's1', 'a b', 1, 'cancelled', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_user", false},
		{"bad key", `INSERT INTO orders ` + cols + ` VALUES ('o_key', 's1', 'mallory', 1, 'expired', 'a' || char(9) || 'b', '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_key", false},
		{"key holding the load's separator", `INSERT INTO orders ` + cols + ` VALUES ('o_sep', 's1', 'mallory', 1, 'paid', 'a' || char(31) || 'b', '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "o_sep", false},
		{"bad time", `INSERT INTO orders ` + cols + ` VALUES ('o_time', 's1', 'mallory', 1, 'paid', NULL, '2026-02-30T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "2026-02-30", false},
		{"order of an unknown sale", `INSERT INTO orders ` + cols + ` VALUES ('o_lost', 'ghost', 'mallory', 1, 'paid', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "order o_lost belongs to unknown sale ghost", false},
		{"order of an unknown sale sorting first", `INSERT INTO orders ` + cols + ` VALUES ('o_lost', 'a', 'mallory', 1, 'paid', NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`, "order o_lost belongs to unknown sale a", false},
		{"sale with no stock", `INSERT INTO sales VALUES ('s0', 'Zero', 0, 1, 0, 'USD', '2026-01-01T00:00:00Z', NULL, 900, '2026-01-01T00:00:00Z', NULL, 0, NULL, NULL, NULL, 0)`, "s0", false},
		{"sale with no limit", `INSERT INTO sales VALUES ('s0', 'Zero', 5, 0, 0, 'USD', '2026-01-01T00:00:00Z', NULL, 900, '2026-01-01T00:00:00Z', NULL, 0, NULL, NULL, NULL, 0)`, "s0", false},
		{"sale with no hold", `INSERT INTO sales VALUES ('s0', 'Zero', 5, 1, 0, 'USD', '2026-01-01T00:00:00Z', NULL, 0, '2026-01-01T00:00:00Z', NULL, 0, NULL, NULL, NULL, 0)`, "s0", false},
		// A waiting room's queue divides by its admission rate: one of
		// zero, or missing, made the first join panic.
		{"waiting room admitting no one", storedRoom(`{"admit_per_second":0,"order":"fifo","ticket_seconds":60}`), damagedRoom, false},
		{"waiting room without a rate", storedRoom(`{"order":"fifo","ticket_seconds":60}`), damagedRoom, false},
		{"waiting room of an unknown order", storedRoom(`{"admit_per_second":5,"order":"random","ticket_seconds":60}`), damagedRoom, false},
		{"waiting room without a ticket", storedRoom(`{"admit_per_second":5,"order":"lottery","ticket_seconds":0}`), damagedRoom, false},
		{"waiting room naming its rate twice", storedRoom(`{"admit_per_second":5,"order":"fifo","ticket_seconds":60,"admit_per_second":0}`), damagedRoom, false},
		{"waiting room followed by more", storedRoom(`{"admit_per_second":5,"order":"fifo","ticket_seconds":60}{"admit_per_second":0}`), damagedRoom, false},
		{"waiting room named in capitals", storedRoom(`{"ADMIT_PER_SECOND":5,"order":"fifo","ticket_seconds":60}`), damagedRoom, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := soldAndClosed(t)
			if !tc.keepChecks {
				dropChecks(t, filepath.Join(dir, sqlite.FileName))
			}
			execIgnoringChecks(t, filepath.Join(dir, sqlite.FileName), tc.insert)
			// The operator's insert raised the database past the mark; a
			// foreign row must be refused for what it is, not as a loss.
			s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
			if err == nil {
				s.Close()
				t.Fatalf("Open accepted a database holding a row it does not understand")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want it to name %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
}

// storedRoom is the statement that gives sale s1 the stored waiting room js;
// damagedRoom, what Open's refusal of a room it never writes says.
func storedRoom(js string) string {
	return `UPDATE sales SET waiting_room = '` + js + `' WHERE id = 's1'`
}

const damagedRoom = "sale s1: database is damaged: bad stored waiting room"

// soldAndClosed is a data directory holding sale s1 (10 units, 2 per
// buyer) with two orders, one of them cancelled, closed cleanly.
func soldAndClosed(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 2)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// execIgnoringChecks runs stmt on the database at path as another program
// could, with CHECK constraints ignored.
func execIgnoringChecks(t *testing.T, path, stmt string) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=ignore_check_constraints(1)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(stmt); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
}

// dropChecks removes the CHECK constraints from the tables of the database
// at path, as a database written by an older or foreign program would be.
func dropChecks(t *testing.T, path string) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1) // writable_schema is per connection
	check := regexp.MustCompile(`CHECK \((?:[^()]|\([^()]*\))*\)`)
	for _, table := range []string{"sales", "orders"} {
		var ddl string
		if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = ?`, table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		stripped := check.ReplaceAllString(ddl, "")
		if stripped == ddl {
			t.Fatalf("no CHECK found in %s", ddl)
		}
		for _, stmt := range []string{`PRAGMA writable_schema = ON`, `UPDATE sqlite_schema SET sql = ? WHERE name = ?`, `PRAGMA writable_schema = OFF`} {
			var args []any
			if strings.HasPrefix(stmt, "UPDATE") {
				args = []any{stripped, table}
			}
			if _, err := raw.Exec(stmt, args...); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
}

// TestRefuseCorruptPage damages a page that loading the orders never reads
// (an index) and checks that Open's quick check refuses the database. The
// damage is done while the store is down after a clean shutdown, its seal
// in place: the changed file must not pass for the sealed one.
func TestRefuseCorruptPage(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 20)
	if err := s.Close(); err != nil { // folds the WAL into the file
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.SealName)); err != nil {
		t.Fatalf("a clean shutdown left no seal: %v", err)
	}
	corruptIndex(t, filepath.Join(dir, sqlite.FileName), "orders_by_sale")
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a corrupt page")
	}
	if !strings.Contains(err.Error(), "quick_check") || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open: %v; want a quick_check failure naming %s", err, dir)
	}
}

// corruptIndex points the first cell of the named index's root page (a
// leaf in these small databases) past the end of the page: the page reads,
// but SQLite's quick check, and any use of the index, fails.
func corruptIndex(t *testing.T, path, index string) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := raw.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = ?`, index).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := (root-1)*pageSize + 8 // b-tree leaf header is 8 bytes; then cell pointers
	if _, err := f.WriteAt([]byte{0xff, 0xf0}, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRefuseCorruptOldDatabase: after a crash, a start checks the file
// beside the load only when creating the schema writes nothing. A damaged
// database of an older version (its upgrade would alter a table) must be
// refused before the upgrade touches it.
func TestRefuseCorruptOldDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.FileName)
	writeOldDatabase(t, path)
	corruptIndex(t, path, "orders_by_sale")
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a corrupt page")
	}
	if !strings.Contains(err.Error(), "quick_check") {
		t.Errorf("Open: %v; want a quick_check failure", err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var cols int
	if err := raw.QueryRow(`SELECT count(*) FROM pragma_table_info('sales')`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if cols != 10 {
		t.Errorf("the refused database's sales table has %d columns, want the 10 it had: the upgrade ran before the check", cols)
	}
}

// TestWALTruncatedWhenIdle checks that the WAL does not stay at its peak
// size: once the writer has been idle, the checkpointer truncates it.
func TestWALTruncatedWhenIdle(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dir, sqlite.WithTimings(sqlite.Options{NoExpiry: true}, 10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10000, 1)); err != nil {
		t.Fatal(err)
	}
	// A burst: many commits between checkpoints.
	batch := make([]surge.Purchase, 100)
	for i := range 20 {
		for j := range batch {
			batch[j] = surge.Purchase{UserID: fmt.Sprintf("u%d-%d", i, j), Quantity: 1}
		}
		if _, _, err := s.Reserve(t.Context(), "s1", batch, surge.At(t0)); err != nil {
			t.Fatal(err)
		}
	}
	wal := filepath.Join(dir, sqlite.FileName+"-wal")
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	peak := fi.Size()
	if peak == 0 {
		t.Fatal("the burst left an empty WAL; the test shows nothing")
	}
	// Eventually, not within a time budget: the deadline only bounds a
	// failing run.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fi, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d bytes (peak %d) after the writer was idle", fi.Size(), peak)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The store still works and keeps its data after the truncation.
	out, _, err := s.Reserve(t.Context(), "s1", []surge.Purchase{{UserID: "late", Quantity: 1}}, surge.At(t0))
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("Reserve after truncation: %+v, %v", out, err)
	}
	if n, _ := s.Remaining(t.Context(), "s1"); n != 10000-2001 {
		t.Errorf("Remaining = %d, want %d", n, 10000-2001)
	}
}

// TestWALBoundedUnderLoad checks that the WAL starts over under a steady
// stream of commits. A background pass copies the frames up to the last
// commit it saw, and SQLite starts the WAL over only when a write begins
// with every frame copied: with a commit during every pass, the WAL grew
// for as long as the load lasted. Here the writer never idles (four
// sales, each with a buyer reserving in a loop) and the WAL may hold 256
// frames (1 MiB) before the writer finishes a pass; the load writes about
// 90 times that (the WAL of the code before the fix ended at 90 MB).
func TestWALBoundedUnderLoad(t *testing.T) {
	dir := t.TempDir()
	const restart = 256
	opts := sqlite.WithRestartFrames(sqlite.WithTimings(sqlite.Options{NoExpiry: true}, 20*time.Millisecond, time.Hour), restart)
	s, err := sqlite.Open(t.Context(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const sales, batches, size = 4, 150, 40
	for i := range sales {
		if err := s.CreateSale(t.Context(), newSale(t, fmt.Sprintf("s%d", i), sales*batches*size, 1)); err != nil {
			t.Fatal(err)
		}
	}
	wal := filepath.Join(dir, sqlite.FileName+"-wal")
	errs := make(chan error, sales)
	for i := range sales {
		go func() {
			id := fmt.Sprintf("s%d", i)
			batch := make([]surge.Purchase, size)
			for b := range batches {
				for j := range batch {
					batch[j] = surge.Purchase{UserID: fmt.Sprintf("u%d-%d", b, j), Quantity: 1}
				}
				if _, _, err := s.Reserve(t.Context(), id, batch, surge.At(t0)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range sales {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	// A WAL that starts over stays near restart frames plus a pass's
	// worth; one that never does holds every commit of the run.
	if limit := int64(16 * restart * 4096); fi.Size() > limit {
		t.Errorf("WAL is %d bytes after the load, over %d: it never started over", fi.Size(), limit)
	}
	for i := range sales {
		if n, _ := s.Remaining(t.Context(), fmt.Sprintf("s%d", i)); n != sales*batches*size-batches*size {
			t.Errorf("sale s%d: remaining %d, want %d", i, n, sales*batches*size-batches*size)
		}
	}
}

// servedWithOrders is a data directory a serving store has sold n orders
// of sale s1 into, every commit still in the WAL and counted by the
// high-water mark; the store stays open until the test ends, as a server
// still running over the directory the test copies.
func servedWithOrders(t *testing.T, n int) (string, surge.Sale) {
	t.Helper()
	src := t.TempDir()
	s, err := sqlite.Open(t.Context(), src, noCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sale := newSale(t, "s1", 1000, 1)
	if err := s.CreateSale(t.Context(), sale); err != nil {
		t.Fatal(err)
	}
	sell(t, s, sale.ID, n)
	if err := s.FlushMark(); err != nil {
		t.Fatal(err)
	}
	return src, sale
}
