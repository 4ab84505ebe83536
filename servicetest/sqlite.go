package servicetest

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	_ "modernc.org/sqlite" // the driver Surge's store uses
)

// HoldSQLiteWriteLock takes SQLite's write lock on the database at path
// from a connection of its own (BEGIN IMMEDIATE), as another writer that
// stalls would: the store's commits then wait for it. It returns the
// release, which may be called more than once; the test's end calls it
// too.
func HoldSQLiteWriteLock(t testing.TB, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	// The busy timeout: the store's checkpoint may hold the database for a
	// moment, and BEGIN IMMEDIATE would fail at once.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		db.Close()
		t.Fatalf("take SQLite's write lock on %s: %v", path, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Errorf("release SQLite's write lock on %s: %v", path, err)
			}
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}
