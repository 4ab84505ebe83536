package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiryOfStuckSalesKeepsTheLease: several sales whose due holds
// PostgreSQL cannot expire within the call timeout. The leader tried each
// of them every round, one call timeout apiece, so that a round outlasted
// the lease it renews only between rounds: the lease lapsed mid-round and
// any other node could take the lead while this one still led. The lease
// must never lapse while its leader runs.
func TestExpiryOfStuckSalesKeepsTheLease(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, LeaseTTL: leaseTTL,
		CallTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	eventuallyLeads(t, s, 10*time.Second, "the only node leads")
	db := servicetest.Conn(t, ns)
	for i := range 10 { // 3 s a round, one call timeout apiece
		reserveEach(t, s, secondHoldSale(t, s, fmt.Sprintf("stuck%d", i), 1), 1)
	}
	begun := stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired'", 2*time.Second)
	waitBegun(t, begun, "the leader tries to expire a stuck sale's hold")
	leaseHeld(t, db, 5*time.Second, "while it tried stuck sales one call timeout apiece")
}

// TestExpiryOfSlowSalesKeepsTheLease: PostgreSQL slow, each sale's expiry
// commits, but only after a while (still within the call timeout). The
// leader expired every due sale before it renewed its lease, so a round
// with enough due sales outlasted the lease: it lapsed mid-round and any
// other node could take the lead while this one still led. The lease must
// never lapse while its leader runs, and every hold must still expire.
func TestExpiryOfSlowSalesKeepsTheLease(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, LeaseTTL: leaseTTL,
		CallTimeout: 800 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	eventuallyLeads(t, s, 10*time.Second, "the only node leads")
	db := servicetest.Conn(t, ns)
	var ids []string
	for i := range 8 { // 3.2 s a round, one after another
		sl := secondHoldSale(t, s, fmt.Sprintf("slow%d", i), 1)
		reserveEach(t, s, sl, 1)
		ids = append(ids, sl.ID)
	}
	begun := stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired'", 400*time.Millisecond)
	waitBegun(t, begun, "the leader expires a slow sale's hold")
	leaseHeld(t, db, 4*time.Second, "while it expired slow sales one after another")
	for _, id := range ids {
		eventuallyRemaining(t, s, id, 1, 10*time.Second, "the slow sales' holds expired")
	}
}

// leaseTTL is the leader's lease in the lease-keeping tests: the slow
// rounds they make outlast it by half, and a renewal may miss twice (each
// a call timeout) on a loaded machine before it lapses. With a 1 s lease
// one slow renewal on a loaded CI machine lapsed it (by 8 ms), which said
// nothing of the round.
const leaseTTL = 2 * time.Second

// leaseHeld watches the leader's lease (the jobs lease, in db) for d and
// fails the test if it lapses meanwhile (while says what the leader did).
func leaseHeld(t *testing.T, db *pgx.Conn, d time.Duration, while string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var left float64
		if err := db.QueryRow(context.Background(), `SELECT extract(epoch FROM expires_at - now())::float8
			FROM leases WHERE name = 'jobs'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left <= 0 {
			t.Fatalf("the leader's lease lapsed mid-round (%.3fs left) %s", left, while)
		}
	}
}
