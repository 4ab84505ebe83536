package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestReconcileClusterAltersNoSchema: README calls surge reconcile
// read-only, "also while serving". Against a cluster's PostgreSQL whose
// schema is older than the binary's (an operator's newer surge against
// nodes not upgraded yet) it ran the pending migrations: DDL on the
// production database, and a node of the older version then refuses to
// start on the schema it no longer knows. Like a data directory of an
// older version (exit 3, "run this version's surge serve on it once"),
// such a schema is refused and left as it is; so is a newer one.
func TestReconcileClusterAltersNoSchema(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	st, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(), cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	st.Close()
	conn := servicetest.Conn(t, ns)
	// Back to the schema before migration 017 (sales.live_left), as a
	// node of the version before left it.
	if _, err := conn.Exec(ctx, `ALTER TABLE sales DROP COLUMN live_left; UPDATE surge_schema_version SET version = 16`); err != nil {
		t.Fatal(err)
	}
	settlement := filepath.Join(t.TempDir(), "settlement.csv")
	if err := os.WriteFile(settlement, []byte("payment_id,order_id,amount,currency,status\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reconcileBin := func() (int, string) {
		cmd := exec.Command(surgeBinary(t), "reconcile", "--json", "--postgres-url", servicetest.PostgresURL()+"&search_path="+ns,
			"--settlement", settlement)
		cmd.Env = append(os.Environ(), "SURGE_DATA_DIR=", "SURGE_POSTGRES_URL=", "SURGE_CONFIG=")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	schema := func() (version int, liveLeft bool) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT version FROM surge_schema_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = 'sales' AND column_name = 'live_left')`, ns).Scan(&liveLeft); err != nil {
			t.Fatal(err)
		}
		return version, liveLeft
	}

	code, out := reconcileBin()
	if v, col := schema(); v != 16 || col {
		t.Fatalf("surge reconcile, read-only, migrated the database's schema from version 16 to %d (sales.live_left added: %v); exit %d, output %q",
			v, col, code, out)
	}
	if code != 3 || !strings.Contains(out, "version 16") {
		t.Errorf("reconcile of a schema older than this version's: exit %d, output %q; want exit 3 (nothing compared) naming version 16", code, out)
	}

	// A newer version's schema: refused too, and left as it is.
	if _, err := conn.Exec(ctx, `ALTER TABLE sales ADD COLUMN live_left boolean NOT NULL DEFAULT false; UPDATE surge_schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	code, out = reconcileBin()
	if v, _ := schema(); v != 999 || code != 3 || !strings.Contains(out, "version 999") {
		t.Errorf("reconcile of a schema newer than this version's: exit %d, output %q, schema version %d after; want exit 3 naming version 999, the schema left at it",
			code, out, v)
	}
}
