package cluster_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestOpenSaysItWaitsForAMigration: a node upgraded while a long read
// holds a table its migration alters (surge reconcile's view, an export)
// waits for it, trying the migration again. It must say so at once: it
// waited without a line, serving nothing, and its operator could not tell
// a hung start from a slow one.
func TestOpenSaysItWaitsForAMigration(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	openStore(t, ns, cluster.Config{NoExpiry: true}).Close()
	// Back to the schema before migration 017, which alters sales.
	conn := servicetest.Conn(t, ns)
	if _, err := conn.Exec(ctx, `ALTER TABLE sales DROP COLUMN live_left; UPDATE surge_schema_version SET version = 16`); err != nil {
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

	var log servicetest.Log
	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		s, err := cluster.Open(octx, redisURL(), postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NodeID: "n", NoExpiry: true,
			Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(log.String(), "waits for tables") {
		select {
		case err := <-opened:
			t.Fatalf("Open ended while the long read held the table: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open waited 15 s for a table a long read holds without a line of log; log: %q", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := reader.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("Open once the long read ended: %v", err)
	}
	if !strings.Contains(log.String(), "the migration went through") {
		t.Errorf("no line once the migration went through; log: %q", log.String())
	}
}
