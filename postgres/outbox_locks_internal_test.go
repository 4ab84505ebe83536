package postgres

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestOutboxReadLocksOnlyPastHorizon: each read of the outbox read the
// server's whole lock table (pg_locks) to learn which transactions still
// write the outbox, also when no seq had been handed out past the horizon
// and nothing could move it: a relay with nothing to publish reads every
// 20 ms, and with 30 sessions holding 100 locks each one read cost 1.3 ms
// of PostgreSQL's CPU (about 6 % of a core for nothing), copied with
// every partition of the lock manager held. The writers must be read
// only when a seq past the horizon was handed out, and then they must be.
func TestOutboxReadLocksOnlyPastHorizon(t *testing.T) {
	ctx := context.Background()
	_, conn := openSchema(t, Options{Events: true})
	event := func() {
		if _, err := conn.Exec(ctx, `INSERT INTO outbox (sale_id, order_id, event, at) VALUES ('s', 'o', 'reserved', now())`); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		events int   // handed out before the read
		final  int64 // the horizon
		locks  bool  // whether the read must read the writers
	}{
		{"no event yet", 0, 0, false},
		{"every event below the horizon", 2, 2, false},
		{"an event past the horizon", 3, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.events - seqs(t, conn) {
				event()
			}
			b := &pgx.Batch{}
			queueAdvance(b, tc.final)
			read := false
			for _, q := range b.QueuedQueries {
				var out string
				if err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q.SQL, q.Arguments...).Scan(&out); err != nil {
					t.Fatalf("%s: %v", q.SQL, err)
				}
				var plan []struct{ Plan planNode }
				if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan) != 1 {
					t.Fatalf("plan %q: %v", out, err)
				}
				var walk func(n planNode)
				walk = func(n planNode) {
					read = read || (n.Function == "pg_lock_status" && n.Loops > 0)
					for _, c := range n.Plans {
						walk(c)
					}
				}
				walk(plan[0].Plan)
			}
			if read != tc.locks {
				t.Errorf("with %d seqs handed out and the horizon at %d, the read read the server's locks: %v, want %v",
					tc.events, tc.final, read, tc.locks)
			}
		})
	}
}

// seqs is the last seq the outbox handed out.
func seqs(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), lastSeqSQL).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
