package cluster_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiryPastAStuckSale: the hold due first is of a sale whose expiry
// never ends within the call timeout (PostgreSQL takes 2 s over that
// sale's order). The leader's batches, halved down to one order after
// each failure, always start with that order: every batch rolled back,
// and no other sale's due hold ever expired. The other sale's holds must
// expire all the same.
func TestExpiryPastAStuckSale(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, CallTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	db := servicetest.Conn(t, ns)
	stuck, other := secondHoldSale(t, s, "stuck", 1), secondHoldSale(t, s, "other", 3)
	stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired' AND NEW.sale_id = 'stuck'", 2*time.Second)
	reserveEach(t, s, stuck, 1) // due first
	time.Sleep(50 * time.Millisecond)
	reserveEach(t, s, other, 3)
	eventuallyRemaining(t, s, other.ID, 3, 15*time.Second, "the other sale's holds expired past the stuck one")
}
