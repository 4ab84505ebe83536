package main

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestClusterStopWhileCancelFollowedUp: a node stopped (SIGTERM) while it
// followed up a cancel whose COMMIT's answer was lost (it waits, up to
// the lease's term, for the transaction to end) took that whole wait
// longer than --shutdown-timeout to exit: the engine's close awaited every
// order change in flight, without a deadline. A stop is bounded by
// --shutdown-timeout; the cancel is PostgreSQL's to commit or not, and the
// leader's sweep gives its units back if it did.
func TestClusterStopWhileCancelFollowedUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const shutdownTimeout = time.Second
	args := clusterArgs(t)
	ns := args[slices.Index(args, "--redis-prefix")+1]
	// The follow-up waits up to the lease's term: long, so that a stop
	// that waits for it cannot pass for one that does not.
	args[slices.Index(args, "--cluster-lease-ttl")+1] = "10s"
	// The node's sessions carry the test's namespace, so that the test
	// finds (and ends) its own among other tests'.
	i := slices.Index(args, "--postgres-url") + 1
	args[i] += "&application_name=" + ns
	ctx := context.Background()
	db := servicetest.Conn(t, ns)
	t.Cleanup(func() {
		// The stalled COMMIT outlives the node: end it before the schema
		// is dropped.
		_, _ = db.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, ns)
	})

	token := "stop-cancel-token"
	p := startProc(t, t.TempDir(), token, append(args, "--shutdown-timeout", shutdownTimeout.String())...)
	saleID := createSale(t, p.base, token, 10, 1)
	hc := &http.Client{Timeout: 60 * time.Second}
	o, err := purchase(ctx, hc, p.base, saleID, intent{user: "alice", key: "a1", qty: 1})
	if err != nil || o.status != http.StatusCreated {
		t.Fatalf("purchase: %+v, %v", o, err)
	}

	// The cancel's COMMIT stalls (a deferred trigger that sleeps, also
	// through cancel requests): the node's call times out with the COMMIT
	// sent and its answer lost.
	for _, q := range []string{
		`CREATE FUNCTION stall_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE
			until timestamptz := clock_timestamp() + interval '60 seconds';
		BEGIN
			WHILE clock_timestamp() < until LOOP
				BEGIN
					PERFORM pg_sleep(extract(epoch FROM until - clock_timestamp()));
				EXCEPTION WHEN query_canceled THEN
					NULL; -- pgx sends one when the call times out, another as it closes the connection
				END;
			END LOOP;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER stall_commit AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW WHEN (NEW.status = 'cancelled') EXECUTE FUNCTION stall_commit()`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/orders/"+o.order.ID+"/cancel", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if res, err := hc.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	waitUntil(t, "the node to follow up the cancel's lost COMMIT", 20*time.Second, func() bool {
		var n int
		err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
			AND wait_event_type = 'Lock' AND query LIKE '%FROM orders WHERE id = ANY($1) FOR SHARE%'`, ns).Scan(&n)
		return err == nil && n == 1
	})
	stopsWithin(t, p, shutdownTimeout, "while following up a cancel whose COMMIT's answer was lost")

	// What was durable stays: the order, reserved (the stalled cancel
	// never committed) or cancelled.
	var status string
	if err := db.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, o.order.ID).Scan(&status); err != nil {
		t.Fatalf("the order after the stop: %v", err)
	}
	if status != "reserved" && status != "cancelled" {
		t.Errorf("the order is %s after the stop", status)
	}
}
