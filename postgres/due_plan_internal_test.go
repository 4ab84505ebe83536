package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestExpiryReadsOnlyItsSale: the leader's statements that find the
// sales with due holds and expire one sale's ran over the due orders of
// every sale (orders_due was by end of hold alone): one order's expiry
// read each order due before it, whatever the batch size, and the
// listing read every due order, each round. With a million due (holds
// that lapsed together across many sales) each took longer than the call
// timeout, so halving the batch down to one order never helped and no
// hold expired at all. Each must read about as many orders as it
// returns, in the plan PostgreSQL makes for the values (custom) and in
// the one it switches a connection's prepared statement to after five
// runs (generic).
func TestExpiryReadsOnlyItsSale(t *testing.T) {
	ctx := context.Background()
	_, conn := openSchema(t, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	// Two busy sales with 5,000 due holds each, then sale "one": a single
	// due hold, ending after all of theirs, beside 2,000 paid orders.
	const due = 5000
	for _, q := range []string{
		`INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency, starts_at, hold_seconds, created_at, sold, ever)
			SELECT id, id, 100000, 1, 100, 'EUR', $1::timestamptz - interval '1 day', 60, $1::timestamptz - interval '1 day', 0, 0
			FROM unnest(ARRAY['a', 'b', 'one']) id`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			SELECT s || n, s, 'u' || n, 1, 'reserved', $1::timestamptz - interval '2 hours',
				$1::timestamptz - interval '1 hour' + n * interval '1 ms'
			FROM generate_series(1, ` + fmt.Sprint(due) + `) n, unnest(ARRAY['a', 'b']) s`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			SELECT 'paid' || n, 'one', 'p' || n, 1, 'paid', $1::timestamptz - interval '2 hours', $1::timestamptz - interval '1 hour'
			FROM generate_series(1, 2000) n`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			VALUES ('last', 'one', 'u1', 1, 'reserved', $1::timestamptz - interval '2 hours', $1::timestamptz - interval '1 second')`,
		`INSERT INTO leases (name, holder, token, expires_at) VALUES ('jobs', 'me', 1, $1::timestamptz + interval '1 hour')`,
	} {
		if _, err := conn.Exec(ctx, q, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The planner's statistics, as autovacuum would gather them.
	if _, err := conn.Exec(ctx, `ANALYZE orders; ANALYZE sales`); err != nil {
		t.Fatal(err)
	}
	at := "'" + now.Format(time.RFC3339Nano) + "'::timestamptz"
	for _, tc := range []struct {
		name, sql, args string
		returns         int
	}{
		{"the sales with due holds", dueSalesSQL, at, 3},
		{"one order's expiry, a batch of one", expireSQL(oneSale), at + ", 1, 'jobs', 'me', 1, 'one'", 1},
		{"one order's expiry, a batch of ten", expireSQL(oneSale), at + ", 10, 'jobs', 'me', 1, 'one'", 1},
	} {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				got, read := explainReads(t, conn, mode, tc.sql, tc.args)
				if got != tc.returns {
					t.Fatalf("the statement returned %d rows, want %d", got, tc.returns)
				}
				// A few per sale for the listing, the order and its lookup
				// by id for the expiry: anything near the 10,000 due orders
				// of the other sales is reading them.
				if read > 20 {
					t.Errorf("it read %d orders to return %d (10,000 other orders due, 2,000 paid of its sale)", read, got)
				}
			})
		}
	}
}

// explainReads runs sql, prepared, with args under the plan cache mode,
// in a transaction it rolls back, without sequential scans, and returns how many rows the
// statement returned and how many rows of orders its plan read (returned
// by a scan or removed by its filters).
func explainReads(t *testing.T, conn *pgx.Conn, mode, sql, args string) (returned, read int) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var plan []struct{ Plan planNode }
	// Sequential scans off: on a table this small PostgreSQL may read
	// every order rather than use an index; on one of millions it reads
	// the orders its indexes lead to, which is what is measured here.
	for _, q := range []string{"SET LOCAL plan_cache_mode = " + mode, "SET LOCAL enable_seqscan = off", "PREPARE explained AS " + sql} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer func() { _, _ = conn.Exec(ctx, "DEALLOCATE explained") }()
	var out string
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE explained("+args+")").Scan(&out); err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		t.Log(out)
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan) != 1 {
		t.Fatalf("plan %q: %v", out, err)
	}
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Relation == "orders" && strings.Contains(n.Type, "Scan") {
			read += int(n.Rows*n.Loops) + int(n.Filtered+n.Rechecked)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plan[0].Plan)
	return int(plan[0].Plan.Rows), read
}

// planNode is a node of EXPLAIN's JSON plan.
type planNode struct {
	Type      string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	Function  string     `json:"Function Name"`
	Rows      float64    `json:"Actual Rows"`
	Loops     float64    `json:"Actual Loops"`
	Filtered  float64    `json:"Rows Removed by Filter"`
	Rechecked float64    `json:"Rows Removed by Index Recheck"`
	Plans     []planNode `json:"Plans"`
}
