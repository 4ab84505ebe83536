package cluster_test

import (
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestRoundKeepsTheLease: a leader's round whose repair outlasts the
// lease's time to live, in a rebuild PostgreSQL is slow to start (within
// the rebuild's own bound of ten call timeouts), or in a step after the
// listing of the sales that takes long (the survey of every sale's state
// took about 2 s with a hundred thousand sales). The leader renewed its
// lease only between rounds and bounded only the expiry of holds by it,
// so the lease lapsed mid-round and any other node could take the lead
// while this one still led. The lease must never lapse while its leader
// runs.
func TestRoundKeepsTheLease(t *testing.T) {
	for _, tc := range []struct {
		name string
		// slow makes the next round take about 4 s past the listing of
		// sale and returns when that slow step has begun.
		slow func(t *testing.T, s *cluster.Store, ns, sale string) (begun func())
	}{
		{"a slow rebuild", func(t *testing.T, s *cluster.Store, ns, sale string) func() {
			db := servicetest.Conn(t, ns)
			begun := stall(t, db, ns, "BEFORE UPDATE ON sales", "NEW.epoch > OLD.epoch", 2*leaseTTL)
			if _, err := db.Exec(t.Context(), `UPDATE sales SET dirty = true WHERE id = $1`, sale); err != nil {
				t.Fatal(err)
			}
			return func() { waitBegun(t, begun, "the rebuild of the dirty sale") }
		}},
		{"a slow step after the listing", func(t *testing.T, s *cluster.Store, ns, sale string) func() {
			begun := make(chan struct{})
			var once sync.Once
			cluster.AfterListing(s, func() {
				once.Do(func() {
					close(begun)
					time.Sleep(2 * leaseTTL)
				})
			})
			return func() { <-begun }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, LeaseTTL: leaseTTL,
				CallTimeout: 400 * time.Millisecond})
			t.Cleanup(func() { s.Close() })
			eventuallyLeads(t, s, 10*time.Second, "the only node leads")
			sl := mustSale(t, s, "slow", 10, 1)
			tc.slow(t, s, ns, sl.ID)()
			leaseHeld(t, servicetest.Conn(t, ns), 5*time.Second, "while its round was slow past the listing")
		})
	}
}
