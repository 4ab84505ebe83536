package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestOutboxBacklogReadsNoWholeOutbox: every node with --nats-url reads
// the outbox's backlog every second (surge_outbox_lag_events). It counted
// the rows, a scan of the whole table: while NATS is down the outbox grows
// by a row per change, so each node's read grew with the outage (0.4 s of
// PostgreSQL's CPU per read at 2 million rows, each node once a second),
// taken from the purchases that docs/events.md says a NATS outage leaves
// unaffected. The figure must come from the ends of the primary key, as
// the embedded store's does, and still be the rows waiting.
func TestOutboxBacklogReadsNoWholeOutbox(t *testing.T) {
	ctx := context.Background()
	db, conn := openSchema(t, Options{Events: true})
	const rows = 20000
	first := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	if _, err := conn.Exec(ctx, `INSERT INTO outbox (sale_id, order_id, event, at)
		SELECT 's', 'o_' || g, 'reserved', $1::timestamptz + g * interval '1 ms' FROM generate_series(0, $2 - 1) g`, first, rows); err != nil {
		t.Fatal(err)
	}
	// The relay published the first 5,000.
	if _, err := conn.Exec(ctx, `DELETE FROM outbox WHERE seq <= 5000`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	n, oldest, err := db.OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantAt := first.Add(5000 * time.Millisecond); n != rows-5000 || !oldest.Equal(wantAt) {
		t.Errorf("backlog (%d, %v), want (%d, %v)", n, oldest, rows-5000, wantAt)
	}
	var out string
	if err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+backlogSQL).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plan []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan) != 1 {
		t.Fatalf("plan %q: %v", out, err)
	}
	read := 0.0
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Relation == "outbox" {
			read += (n.Rows + n.Filtered + n.Rechecked) * n.Loops
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plan[0].Plan)
	if read > 100 {
		t.Errorf("reading the backlog of %d events read %.0f rows of the outbox: it grows with the backlog (plan %s)", rows-5000, read, out)
	}
}
