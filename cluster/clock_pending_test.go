package cluster_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestLeaderAheadRebuildsNoBatchInFlight (cluster, the leader's clock
// 15 s ahead, more than --cluster-confirm-after's 10 s): a batch another
// node reserved in Redis and is inserting into PostgreSQL is in flight,
// not abandoned. The pending set was scored with the reserving node's
// clock and read against the leader's, so every batch in flight during a
// leader's round looked 15 s old: the leader found its orders missing and
// rebuilt the sale, whose new epoch fences every node's inserts in flight
// (503s, round after round). No rebuild may follow.
func TestLeaderAheadRebuildsNoBatchInFlight(t *testing.T) {
	ns := namespace(t)
	const ahead = 15 * time.Second
	leader := openStore(t, ns, cluster.Config{NodeID: "ahead", Interval: 100 * time.Millisecond,
		Now: func() time.Time { return time.Now().Add(ahead) }})
	t.Cleanup(func() { leader.Close() })
	eventuallyLeads(t, leader, 10*time.Second, "the node whose clock is ahead leads")
	other := openStore(t, ns, cluster.Config{NodeID: "other", Interval: 100 * time.Millisecond, NoExpiry: true,
		CallTimeout: 5 * time.Second})
	t.Cleanup(func() { other.Close() })

	id, name, stock := "inflight", "In flight", int64(10)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, other, sl)
	db := servicetest.Conn(t, ns)
	epoch := func() (e int64) {
		t.Helper()
		if err := db.QueryRow(t.Context(), `SELECT epoch FROM sales WHERE id = $1`, id).Scan(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := epoch()
	// The insert takes 1.5 s: several of the leader's rounds see the batch
	// in Redis and not yet in PostgreSQL.
	stall(t, db, ns, "BEFORE INSERT ON orders", "true", 1500*time.Millisecond)
	out, _, err := reserve(other, id, surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 1})
	if err != nil || len(out) != 1 || out[0].Code != surge.CodeReserved {
		t.Errorf("a purchase whose insert was in flight: %+v, %v; want reserved", out, err)
	}
	// A rebuild diagnosed while the insert ran commits once it has: the
	// leader's next rounds have time to land it.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if after := epoch(); after != before {
			t.Fatalf("the sale went from epoch %d to %d: the leader rebuilt it for a batch in flight", before, after)
		}
	}
}
