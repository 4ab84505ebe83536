package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/servicetest"
)

// openSchema opens the store in a fresh schema of the real server, and a
// connection of the test's own to that schema, for what the store's API
// does not show (plans, rows, locks).
func openSchema(t *testing.T, opts Options) (*DB, *pgx.Conn) {
	t.Helper()
	ns := servicetest.Namespace(t)
	opts.Schema = ns
	db, err := Open(context.Background(), servicetest.PostgresURL(), opts)
	if err != nil {
		t.Fatalf("Open (is PostgreSQL up? run scripts/services.sh): %v", err)
	}
	t.Cleanup(db.Close)
	return db, servicetest.Conn(t, ns)
}
