package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// A node that starts with a migration while a long read holds a table it
// alters (surge reconcile's view, an export of a large sale) must not
// stall the cluster's writes behind it: the migration's lock request
// queued ahead of every later one, so each insert and settle of every
// serving node (they all update the sale row) waited for the long read
// to end, past the call timeout, answering 503. The migration now gives
// up a lock it cannot get at once and tries again.
func TestMigrationDoesNotQueueWrites(t *testing.T) {
	ctx := context.Background()
	conn, _ := migratedTo(t, 16) // 017 alters sales
	var ns string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&ns); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency,
		starts_at, hold_seconds, created_at) VALUES ('s', 'x', 10, 1, 0, 'USD', now(), 900, now())`); err != nil {
		t.Fatal(err)
	}
	// The long read: a transaction that read sales and stays open.
	reader := servicetest.Conn(t, ns)
	if _, err := reader.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM sales`); err != nil {
		t.Fatal(err)
	}

	octx, ocancel := context.WithTimeout(ctx, 2*time.Minute)
	defer ocancel()
	opened := make(chan error, 1)
	go func() {
		db, err := Open(octx, servicetest.PostgresURL(), Options{Schema: ns})
		if err == nil {
			db.Close()
		}
		opened <- err
	}()
	// Wait until the migration asks for the table.
	watch := servicetest.Conn(t, ns)
	deadline := time.Now().Add(time.Minute)
	for {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE relation = 'sales'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never asked for the sales table")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A serving node's write of the sale row, within the call timeout's order.
	writer := servicetest.Conn(t, ns)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	start := time.Now()
	if _, err := writer.Exec(wctx, `UPDATE sales SET dirty = true WHERE id = 's'`); err != nil {
		t.Fatalf("a write of the sale row while a migration waited for a long read: %v after %v (it queued behind the migration)",
			err, time.Since(start).Round(time.Millisecond))
	}
	select {
	case err := <-opened:
		t.Fatalf("Open ended while the long read held the table: %v", err)
	default:
	}
	// The long read ends: the migration goes through.
	if _, err := reader.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("Open once the long read ended: %v", err)
	}
}
