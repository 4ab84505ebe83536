package sqlite_test

import (
	"database/sql"
	"fmt"
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
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	newer := written + 1
	for _, stmt := range []string{
		`ALTER TABLE sales ADD COLUMN max_per_order INTEGER`,
		`UPDATE sales SET max_per_order = 1`,
		fmt.Sprintf(`PRAGMA user_version = %d`, newer),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	got, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err == nil {
		what := "and took orders"
		out, _, rerr := got.Reserve(ctx, "s1", []surge.Purchase{{UserID: "alice", Quantity: 2}}, t0)
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
	db, err = sql.Open("sqlite", "file:"+path+"?mode=ro")
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
