package sqlite

import (
	"strings"
	"testing"
)

// TestOutboxBacklogReadsNoWholeOutbox: the relay reads the outbox's
// backlog every second (surge_outbox_lag_events), also, and above all,
// while NATS is down and the outbox grows by a row per change. The read
// was meant to cost two index reads whatever the backlog (outboxSchema's
// seqs have no gaps), but SQLite reads min() and max() from the ends of
// the key only when one of them is a query's whole result: asked for both
// at once, it scanned every row, 0.5 s at 2 million events, once a second
// for as long as the outage lasted. No step of the read may scan the
// outbox.
func TestOutboxBacklogReadsNoWholeOutbox(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir(), Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plan := QueryPlan(t, s.r, backlogSQL)
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN outbox") {
			t.Errorf("reading the backlog scans the outbox, which grows with the backlog: plan %q", plan)
			break
		}
	}
}
