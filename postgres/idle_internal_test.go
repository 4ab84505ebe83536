package postgres

import (
	"context"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/servicetest"
)

// TestURLOptionsIdleTimeoutKept: an operator who turns the idle bound
// off, or sets another, with the libpq way of passing settings (the URL's
// options=-c ..., or PGOPTIONS) gets that value, as one who names the
// parameter in the URL does: Open must not put its 5 s over it.
func TestURLOptionsIdleTimeoutKept(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	u := servicetest.PostgresURL() + "&options=" + strings.ReplaceAll(neturl.QueryEscape("-c idle_in_transaction_session_timeout=0"), "+", "%20")
	db, err := Open(ctx, u, Options{Schema: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.pool.QueryRow(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "0" {
		t.Errorf("URL with options=-c idle_in_transaction_session_timeout=0: the session's timeout is %q, want 0 (the operator's)", got)
	}
}

// TestOpenThroughPgBouncer: docs/cluster.md sends a deployment that runs
// out of connections to a pooler in session mode. PgBouncer refuses a
// startup parameter it does not know ("unsupported startup parameter"),
// so Open must not send idle_in_transaction_session_timeout as one: a node
// behind PgBouncer could then not connect at all. Runs a real PgBouncer
// (session mode, in front of the test PostgreSQL).
func TestOpenThroughPgBouncer(t *testing.T) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("pgbouncer is not installed (scripts/services.sh installs it)")
	}
	ctx := context.Background()
	// A database of its own: PgBouncer 1.18 refuses search_path as a
	// startup parameter too, so the test opens without Options.Schema.
	name, _ := ownDatabase(t, "pgb_")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "surge-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	cfg := fmt.Sprintf(`[databases]
test = host=127.0.0.1 port=5432 dbname=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = session
server_reset_query =
`, name, port, users)
	for name, body := range map[string]string{users: `"postgres" ""` + "\n", ini: cfg} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{ini}
	if os.Geteuid() == 0 {
		args = []string{"-u", "nobody", ini} // PgBouncer refuses to run as root
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer did not listen on %d: %s", port, out.String())
		}
	}
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", port)
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := Open(octx, u, Options{})
	if err != nil {
		t.Fatalf("postgres.Open through PgBouncer in session mode (the pooler docs/cluster.md names): %v", err)
	}
	defer db.Close()
	var timeout string
	if err := db.pool.QueryRow(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != IdleInTransactionTimeout {
		t.Errorf("through PgBouncer the session's idle_in_transaction_session_timeout is %q, want %s", timeout, IdleInTransactionTimeout)
	}
}

// TestMigrationStoppedInTransactionIsBounded: a node stopped inside a
// migration's transaction (SIGSTOP, a frozen VM while it starts after an
// upgrade) holds the locks of the migration's DDL and the migrator's
// advisory lock; every other node's statements on those tables, and every
// other node's start, wait on it. The idle bound must apply to the
// migration's session as to the pool's: PostgreSQL ends it 5 s after the
// client stopped. The client is stopped here by blocking in Observe once a
// statement of the migration's transaction has run.
func TestMigrationStoppedInTransactionIsBounded(t *testing.T) {
	ctx := context.Background()
	ns := servicetest.Namespace(t)
	app := "migrate-" + ns
	// A database of its own: the migrator's advisory lock, which the
	// stopped migration holds for the idle bound, is the database's, and
	// every node of every other test starting meanwhile in the shared
	// database would wait those 5 s for it.
	_, dbURL := ownDatabase(t, "mig_")
	u := dbURL + "&application_name=" + app
	stopped := make(chan struct{})
	thaw := make(chan struct{})
	opened := make(chan error, 1)
	t.Cleanup(func() {
		close(thaw)
		select { // before the schema is dropped
		case <-opened:
		case <-time.After(10 * time.Second):
		}
	})
	var once bool
	observe := func(op string, _ time.Duration) {
		// "update" or "reset": tern's statements inside each migration's
		// transaction, after the migration's own SQL.
		if once || (op != "update" && op != "reset") {
			return
		}
		once = true
		close(stopped)
		select {
		case <-thaw:
		case <-time.After(30 * time.Second):
		}
	}
	go func() {
		db, err := Open(ctx, u, Options{Schema: ns, Observe: observe})
		if err == nil {
			db.Close()
		}
		opened <- err
	}()
	select {
	case <-stopped:
	case err := <-opened:
		t.Fatalf("Open ended before its migration's transaction was stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the migration never ran a statement in its transaction")
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	idle := func() (int, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`, app).Scan(&n)
		return n, err
	}
	if n, err := idle(); err != nil || n != 1 {
		t.Fatalf("sessions of the stopped migration idle in a transaction: %d, %v; want 1", n, err)
	}
	deadline := time.Now().Add(idleBound() + 3*time.Second)
	for {
		n, err := idle()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the migration's session stayed idle in its transaction %v after its client stopped (the idle bound is %s): "+
				"it holds the migration's locks and the migrator's advisory lock for as long as the node stays stopped",
				idleBound()+3*time.Second, IdleInTransactionTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// IdleTimeoutForTest is IdleInTransactionTimeout as a duration.
func idleBound() time.Duration {
	d, err := time.ParseDuration(IdleInTransactionTimeout)
	if err != nil {
		panic(err)
	}
	return d
}

// ownDatabase creates a database of the test's own on the test server,
// named prefix and a fresh namespace, dropped when the test ends; it
// returns its name and a URL of it. For what the shared database must not
// see: PgBouncer's startup parameters, and locks that are the database's.
func ownDatabase(t *testing.T, prefix string) (name, url string) {
	t.Helper()
	ns := servicetest.Namespace(t)
	conn := servicetest.Conn(t, ns)
	name = prefix + strings.ToLower(ns)
	dbname := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+dbname); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(context.Background(), "DROP DATABASE "+dbname+" WITH (FORCE)"); err != nil {
			t.Errorf("drop the test's database: %v", err)
		}
	})
	u, err := neturl.Parse(servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return name, u.String()
}
