package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestOutboxHorizonIgnoresUnrelatedTransactions: a transaction that can
// hold no seq of this outbox (a write to another schema's outbox, as of
// another cluster sharing the database, or to any other table of the
// server) does not hold back the reader. It did: the reader waited for
// every transaction of the server older than its own, up to 2 s, then
// returned nothing new, so a relay published no event while any write
// anywhere on the server stayed open (the contract suite's Outbox section
// failed "outbox holds 0 events, want 7" beside other tests).
func TestOutboxHorizonIgnoresUnrelatedTransactions(t *testing.T) {
	for _, tc := range []struct {
		name string
		// open gives the schema the transaction runs in and its writes.
		open func(t *testing.T) (ns string, writes []string)
	}{
		{"a write to another schema's outbox", func(t *testing.T) (string, []string) {
			_, ns, sl, _ := horizonReader(t, "x1")
			return ns, []string{"UPDATE orders SET status = 'paid' WHERE id = 'x1'",
				"INSERT INTO outbox (sale_id, order_id, event, at) VALUES ('" + sl.ID + "', 'x1', 'paid', now())"}
		}},
		{"a write to an unrelated table", func(t *testing.T) (string, []string) {
			return servicetest.Namespace(t), []string{"CREATE TABLE unrelated (x int)", "INSERT INTO unrelated VALUES (1)"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, _, _, read := horizonReader(t, "o1")
			ns, writes := tc.open(t)
			tx, err := servicetest.Conn(t, ns).Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			// The schema of a plain table is not made by Namespace.
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ns); err != nil {
				t.Fatal(err)
			}
			for _, w := range writes {
				if _, err := tx.Exec(ctx, w); err != nil {
					t.Fatalf("%s: %v", w, err)
				}
			}
			// o1's reserved event (seq 1) committed before the read began;
			// nothing the open transaction does can come before it.
			start := time.Now()
			got := read(0)
			if took := time.Since(start); !slices.Equal(got, []int64{1}) {
				t.Fatalf("with %s left open, the reader read seqs %v after %v; want o1's reserved event, seq 1", tc.name, got, took.Round(time.Millisecond))
			}
		})
	}
}
