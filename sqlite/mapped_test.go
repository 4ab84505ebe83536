package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMappedFaultRefuses: the start's check reads the file through a
// memory map, where a page the disk cannot read raises SIGBUS instead of
// returning an I/O error. Cutting the file short while a read holds it
// mapped faults the same way; mapped must turn that into ErrDamaged and
// leave the process running (without the recovery the test binary dies).
func TestMappedFaultRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// About 10 MB: 20,000 rows of 500 bytes.
	if _, err := db.Exec(`CREATE TABLE t (v TEXT);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
		INSERT INTO t SELECT printf('%0500d', i) FROM n`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := openToCheck(path, checkMap)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	faulted, err := mapped(path, func() error {
		rows, err := c.Query(`SELECT v FROM t`)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() { // the read transaction maps the whole file
			return errors.New("no first row")
		}
		if err := os.Truncate(path, 8192); err != nil {
			return err
		}
		for read = 1; rows.Next(); read++ {
		}
		return rows.Err()
	})
	if !faulted || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("mapped over a file cut short: faulted %v, err %v (after %d rows); want a fault reported as ErrDamaged naming %s",
			faulted, err, read, path)
	}
	// c is left unclosed, as startCheck leaves it after a fault.
}

// TestMappedPassesOtherPanics: only a memory fault becomes an error.
func TestMappedPassesOtherPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want the panic mapped's reader raised", r)
		}
	}()
	_, _ = mapped("x", func() error { panic("boom") })
	t.Fatal("mapped returned after its reader panicked")
}
