package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
)

// stallCommit makes the commit of every transaction that updated an
// order matching cond (on NEW) take hold, also through a cancel: the
// statement is done, its answer is lost on the way.
func stallCommit(t *testing.T, db *pgx.Conn, cond string, hold time.Duration) {
	t.Helper()
	secs := strconv.FormatFloat(hold.Seconds(), 'f', 3, 64)
	for _, q := range []string{
		`CREATE FUNCTION stall_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			BEGIN
				PERFORM pg_sleep(` + secs + `);
			EXCEPTION WHEN query_canceled THEN
				PERFORM pg_sleep(` + secs + `);
			END;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER stall_commit AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW WHEN (` + cond + `) EXECUTE FUNCTION stall_commit()`,
	} {
		if _, err := db.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestCancelWithLostAnswerIsCounted: a cancel whose PostgreSQL statement
// outlived the call timeout (PostgreSQL slow; the cancel of the statement
// ignored) was answered 503, yet committed: the order is cancelled and the
// sweep gives its unit back, but no node counted it in
// surge_order_transitions_total{to="cancelled"}. Whatever happened, the
// count must equal the orders PostgreSQL holds cancelled.
func TestCancelWithLostAnswerIsCounted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall func(t *testing.T, db *pgx.Conn, ns string)
	}{
		{"statement stalled", func(t *testing.T, db *pgx.Conn, ns string) {
			stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'cancelled'", 1500*time.Millisecond)
		}},
		{"commit stalled", func(t *testing.T, db *pgx.Conn, _ string) {
			stallCommit(t, db, "NEW.status = 'cancelled'", 1500*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			ctx := context.Background()
			reg, m := newMetrics(t)
			s := openStore(t, ns, cluster.Config{NoExpiry: true, Interval: 100 * time.Millisecond, CallTimeout: 400 * time.Millisecond, Metrics: reg})
			e, err := engine.Open(ctx, s, engine.Config{Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close(); s.Close() })
			db := servicetest.Conn(t, ns)
			id, name, stock, hold := "c", "C", int64(3), int64(3600)
			engineSale(t, e, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold})
			out := enginePurchase(t, e, engine.PurchaseRequest{SaleID: id, Purchase: surge.Purchase{UserID: "alice", IdempotencyKey: "k", Quantity: 1}})
			tc.stall(t, db, ns)
			_, cancelErr := e.Cancel(ctx, out.Order.ID)
			// Every write to orders landed or rolled back; then the count,
			// and the unit, follow what PostgreSQL holds.
			var cancelled int
			err = landed(t, db, "orders", func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'cancelled'`).Scan(&cancelled)
			})
			if err != nil {
				t.Fatal(err)
			}
			eventuallyRemaining(t, s, id, stock-1+int64(cancelled), 10*time.Second, "the unit is back once the order is cancelled")
			counted := func() float64 { return transitionCount(t, reg, id, metrics.ToCancelled) }
			eventually(t, 5*time.Second, "the cancel's count follows PostgreSQL", func() error {
				if n := counted(); n != float64(cancelled) {
					return fmt.Errorf("surge_order_transitions_total{to=cancelled} = %v, orders cancelled in PostgreSQL %d", n, cancelled)
				}
				return nil
			})
			time.Sleep(500 * time.Millisecond) // later rounds (the sweep) count nothing more
			if n := counted(); n != float64(cancelled) {
				t.Errorf("surge_order_transitions_total{to=cancelled} = %v, orders cancelled in PostgreSQL %d (the cancel answered %v)", n, cancelled, cancelErr)
			}
		})
	}
}

// transitionCount is surge_order_transitions_total{sale, to} on reg, 0
// when it has no such series.
func transitionCount(t *testing.T, reg *prometheus.Registry, sale, to string) float64 {
	t.Helper()
	for _, m := range gather(t, reg)["surge_order_transitions_total"].GetMetric() {
		if label(m, "sale") == sale && label(m, "to") == to {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
