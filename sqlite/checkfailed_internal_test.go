package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDamageWhileContextEnds: a quick check that SQLite ends with
// SQLITE_CORRUPT has found damage, whether or not the caller's context
// ended meanwhile (SIGTERM during a start, a deadline around a backup's
// check): only an interruption says nothing of the file. Told "stopped
// before it finished", the operator retries a start or a backup of a
// damaged database rather than restore it. The driver's own error is
// classified here with the context already ended, as it is when the
// context ends in the moment between SQLite's answer and the check's.
func TestCheckDamageWhileContextEnds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "whole.db")
	db, err := openToCheck(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA query_only(0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t(a, b); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000)
		INSERT INTO t SELECT i, hex(randomblob(50)) FROM c; CREATE INDEX tb ON t(b)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Cut short, as a disk that lost the file's tail leaves it.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = openToCheck(damaged, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var found error // SQLite's own answer to the quick check
	rows, err := db.QueryContext(t.Context(), `PRAGMA quick_check(20)`)
	if err != nil {
		found = err
	} else {
		for rows.Next() {
		}
		found = rows.Err()
		rows.Close()
	}
	if found == nil || !strings.Contains(found.Error(), "malformed") {
		t.Fatalf("quick check of a file cut in half: %v; the test needs SQLite's SQLITE_CORRUPT", found)
	}
	for _, c := range []struct {
		name string
		ctx  func() context.Context
	}{
		{"cancelled", func() context.Context { ctx, cancel := context.WithCancel(t.Context()); cancel(); return ctx }},
		{"deadline", func() context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), 0)
			t.Cleanup(cancel)
			return ctx
		}},
	} {
		err := checkFailed(c.ctx(), damaged, found)
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("SQLite answered the quick check %q and the caller's context ended (%s): reported %q; expected %v, the damage SQLite found",
				found, c.name, err, ErrDamaged)
		}
	}
	// An interruption itself still says nothing of the file.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := checkFailed(ctx, damaged, ctx.Err()); errors.Is(err, ErrDamaged) {
		t.Errorf("a check the caller's cancellation stopped: %q; expected no damage", err)
	}
}
