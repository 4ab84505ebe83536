package main

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestClusterStopWhilePostgresStalls: a node stopped (SIGTERM) while
// PostgreSQL stalls, after some of its calls there timed out, took about
// 15 s more than --shutdown-timeout to exit: closing the connection pool
// waited for each timed-out connection's cancel request and drain, which
// pgx bounds at 15 s, whatever the node was told. A stop is bounded by
// --shutdown-timeout.
func TestClusterStopWhilePostgresStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const shutdownTimeout = 3 * time.Second
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	args := clusterArgs(t)
	ns := args[slices.Index(args, "--redis-prefix")+1]
	args[slices.Index(args, "--postgres-url")+1] = "postgres://postgres@" + px.Addr + "/test?sslmode=disable&search_path=" + ns
	token := "stalled-postgres-token"
	p := startProc(t, t.TempDir(), token, append(args, "--shutdown-timeout", shutdownTimeout.String())...)
	saleID := createSale(t, p.base, token, 100, 1)
	ctx := context.Background()
	hc := &http.Client{Timeout: 10 * time.Second}
	if o, err := purchase(ctx, hc, p.base, saleID, intent{user: "warm", key: "warm", qty: 1}); err != nil || o.status != http.StatusCreated {
		t.Fatalf("purchase before the stall: %+v, %v", o, err)
	}

	px.Pause()
	// A purchase whose commit times out (the call timeout, 2 s), and the
	// leader's calls of a round or two.
	if o, err := purchase(ctx, hc, p.base, saleID, intent{user: "stalled", key: "stalled", qty: 1}); err != nil || o.status != http.StatusServiceUnavailable {
		t.Fatalf("purchase during the stall: %+v, %v; want 503", o, err)
	}
	stopsWithin(t, p, shutdownTimeout, "while PostgreSQL stalled") // it took 13.5 s
}
