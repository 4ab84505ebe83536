package sqlite_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestRefuseNewerDatabase: a data directory a newer version of Surge has
// upgraded is refused, not served as if this version knew its layout. The
// newer version here adds a rule of its own to the sales table (at most
// one unit per order) and raises the database's schema version past the
// one this build wrote; this build, which ignores that rule, must not sell
// from the database (an operator rolling the binary back after an upgrade)
// and must leave it as the newer version left it.
func TestRefuseNewerDatabase(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.FileName)
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 10, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The newer version upgrades the database, as its Open would.
	const newer = 1000
	written := asNewerVersion(t, path, newer, `ALTER TABLE sales ADD COLUMN max_per_order INTEGER`,
		`UPDATE sales SET max_per_order = 1`)

	got, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		what := "and took orders"
		out, _, rerr := got.Reserve(ctx, "s1", []surge.Purchase{{UserID: "alice", Quantity: 2}}, surge.At(t0))
		if rerr == nil && out[0].Err == nil {
			what = "and sold 2 units in one order, where that version allows 1 per order"
		}
		got.Close()
		t.Fatalf("Open accepted a database a newer version had upgraded (schema version %d; this build wrote %d) %s; want the start refused",
			newer, written, what)
	}
	if !strings.Contains(err.Error(), "newer version") {
		t.Errorf("Open refused with %q; want it to say a newer version of Surge wrote the database", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var after int64
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&after); err != nil || after != newer {
		t.Errorf("schema version after the refused start = %d, %v; want %d, as the newer version left it", after, err, newer)
	}
	if _, err := sqlite.OpenReader(ctx, dir); err == nil || !strings.Contains(err.Error(), "newer version") {
		t.Errorf("OpenReader of the newer database: %v; want it refused as a newer version's", err)
	}
}

// TestRefusedNewerStartKeepsSeal: docs/architecture.md: a start refuses a
// database a newer version wrote "before it reads or writes anything", and
// leaves it as the newer version left it. The data directory a newer
// version stopped cleanly holds its seal (surge.clean), which spares that
// version's next start the quick check and the progress count (3.2 s of
// CPU a million orders). An operator who rolls back, is refused, and
// starts the newer version again must find the directory as it was, seal
// included.
func TestRefusedNewerStartKeepsSeal(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.FileName)
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 100, 1)); err != nil {
		t.Fatal(err)
	}
	sell(t, s, "s1", 20)
	// The newer version raises the database's version while it serves,
	// and then stops cleanly: its seal vouches for the file as it is.
	written := asNewerVersion(t, path, 1000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sealPath := filepath.Join(dir, sqlite.SealName)
	seal, err := os.ReadFile(sealPath)
	if err != nil {
		t.Fatalf("setup: the clean stop left no seal: %v", err)
	}

	got, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		got.Close()
		t.Fatalf("Open accepted a database of schema version 1000 (this build writes %d); want it refused", written)
	}
	if !errors.Is(err, sqlite.ErrNewer) {
		t.Fatalf("Open refused with %v; want ErrNewer", err)
	}
	after, rerr := os.ReadFile(sealPath)
	if rerr != nil || !bytes.Equal(after, seal) {
		t.Errorf("the refused start (%v) took away the newer version's clean-shutdown seal %s (after: %d bytes, %v; before: %d bytes): "+
			"the refusal must leave the directory as it found it, or that version's next start runs the full checks as after a crash",
			err, sqlite.SealName, len(after), rerr, len(seal))
	}
}

// TestGarbageDatabaseRefusedAsDamaged: a surge.db that is no SQLite
// database at all (a block the disk returns damaged over its header, a
// file copied wrong) is refused as damaged (ErrDamaged, "database is
// damaged": restore it from a backup), as docs/architecture.md says of a
// database SQLite's quick check fails; not as a failure to read its
// schema version, which sends the operator after versions.
func TestGarbageDatabaseRefusedAsDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a surge.db that is no database")
	}
	if !errors.Is(err, sqlite.ErrDamaged) {
		t.Errorf("Open of a surge.db of garbage refused with %q; want ErrDamaged (\"database is damaged\"), as before the schema version was checked", err)
	}
}

// TestReaderRefusesNewerLayoutAsNewer: a newer version may change the
// layout so far that a table this build reads is gone (the very reason
// the database carries its version). surge reconcile (OpenReader) must
// then say that a newer version wrote the database, as a start does, not
// that it "lacks tables of this version; run this version's surge serve
// on it once": that advice leads the operator to a start that refuses it.
func TestReaderRefusesNewerLayoutAsNewer(t *testing.T) {
	ctx := t.Context()
	dir := newerWithSale(t, `ALTER TABLE archived_sales RENAME TO sale_archive`)
	r, err := sqlite.OpenReader(ctx, dir)
	if err == nil {
		r.Close()
		t.Fatal("OpenReader accepted a database of schema version 1000 whose layout this build does not know")
	}
	if !errors.Is(err, sqlite.ErrNewer) {
		t.Errorf("OpenReader of a newer version's database (schema version 1000, a table renamed) refused with %q; "+
			"want ErrNewer, saying a newer version of Surge wrote it", err)
	}
}

// newerWithSale is a data directory holding one sale, closed, then changed
// by stmts and stamped as a newer version's of schema version 1000.
func newerWithSale(t *testing.T, stmts ...string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	asNewerVersion(t, filepath.Join(dir, sqlite.FileName), 1000, stmts...)
	return dir
}

// asNewerVersion changes the database at path as a newer version of Surge
// would (stmts), stamps it with that version's schema version, and returns
// the version this build wrote there.
func asNewerVersion(t *testing.T, path string, version int64, stmts ...string) (written int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range append(stmts, fmt.Sprintf(`PRAGMA user_version = %d`, version)) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return written
}

// TestRefusedNewerStartWritesNothing: a newer version that stopped
// without a clean shutdown (a crash, kill -9, a power cut) leaves its
// last commits in surge.db-wal, the version stamp among them. A start of
// an older build refuses that database (ErrNewer) and must leave it as
// the newer version left it, byte for byte: not fold the WAL into
// surge.db as the last connection to close would (a checkpoint writes
// the newer version's pages into the file, then removes the WAL), nor
// touch its -shm or seal. The operator's next step is to start the newer
// version again, which must find its files as it left them.
func TestRefusedNewerStartWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash bool // the newer version stopped without Close: its WAL holds commits
		noShm bool // and its -shm is gone (a copy of the directory that left it out)
	}{
		{"after a crash, commits in the WAL", true, false},
		{"after a crash, a WAL without its -shm", true, true},
		{"after a clean stop, sealed", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			live, s := soldTwenty(t)
			asNewerVersion(t, filepath.Join(live, sqlite.FileName), 1000)
			dir := live
			if tc.crash {
				// The files as a crash would leave them: copied while the
				// store has them open, its checkpointer idle.
				names := []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm"}
				if tc.noShm {
					names = names[:2]
				}
				dir = copied(t, live, names...)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			names := []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm", sqlite.SealName}
			before := fileHashes(t, dir, names)
			if tc.crash && (before[sqlite.FileName+"-wal"] == "missing" || before[sqlite.SealName] != "missing") {
				t.Fatalf("setup: want a WAL and no seal, got %v", before)
			}
			if !tc.crash && before[sqlite.SealName] == "missing" {
				t.Fatalf("setup: the clean stop left no seal: %v", before)
			}

			got, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
			if err == nil {
				got.Close()
				t.Fatal("Open accepted a database of schema version 1000; want it refused")
			}
			if !errors.Is(err, sqlite.ErrNewer) {
				t.Fatalf("Open refused with %v; want ErrNewer", err)
			}
			after := fileHashes(t, dir, names)
			for _, name := range names {
				if before[name] != after[name] {
					t.Errorf("the refused start (ErrNewer) changed %s: before %s, after %s; want the newer version's files left byte for byte as they were",
						name, before[name], after[name])
				}
			}
		})
	}
}

// fileHashes is the SHA-256 of each named file in dir, "missing" for one
// that does not exist.
func fileHashes(t *testing.T, dir string, names []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(names))
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			m[name] = "missing"
		case err != nil:
			t.Fatal(err)
		default:
			m[name] = fmt.Sprintf("%d bytes sha256 %x", len(b), sha256.Sum256(b))
		}
	}
	return m
}
