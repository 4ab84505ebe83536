package cluster_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/errgroup"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestLeaseOutlivesPostgresBreaker: purchases of one sale time out behind
// its locked row, five in a row, and open the PostgreSQL breaker, while
// PostgreSQL itself answers every other statement. The leader's renewals
// went through that breaker, failed at once, and the node logged "lost
// the lead" and gave its rounds up, though its lease was PostgreSQL's to
// renew all along.
func TestLeaseOutlivesPostgresBreaker(t *testing.T) {
	ns := namespace(t)
	recs := &servicetest.Records{Level: slog.LevelWarn}
	s := openStore(t, ns, cluster.Config{NodeID: "leader", LeaseTTL: 3 * time.Second, Interval: 200 * time.Millisecond,
		CallTimeout: time.Second, BreakerOpen: time.Minute, NoExpiry: true, Logger: slog.New(recs)})
	t.Cleanup(func() { s.Close() })
	eventuallyLeads(t, s, 10*time.Second, "the node leads")
	mustSale(t, s, "stuck", 100, 100)
	holdSaleRow(t, ns, "stuck")
	// Purchases at once, as a sale's buyers come: their timeouts land
	// together, with no success between them.
	for round := 0; round < 5 && !breakerOpen(s); round++ {
		var g errgroup.Group
		for i := range 6 {
			g.Go(func() error {
				_, _, err := reserve(s, "stuck", surge.Purchase{UserID: fmt.Sprintf("u%d-%d", round, i), Quantity: 1})
				if err == nil {
					return errors.New("a purchase committed behind the locked sale row")
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	opened := breakerOpen(s)
	if !opened {
		t.Fatal("the purchases timing out did not open the PostgreSQL breaker")
	}
	// Several renewals (each a third of the lease's 3 s) with the breaker open.
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !s.Leader() {
			t.Fatalf("the node gave up the lead while only its breaker was open (PostgreSQL answers); logged: %q %v", recs.Messages(), attrs(recs.Named("lost the lead")[0]))
		}
	}
	if lost := recs.Named("lost the lead"); len(lost) > 0 {
		t.Errorf("logged %q (%v) while PostgreSQL answered its renewals", lost[0].Message, attrs(lost[0]))
	}
}

// breakerOpen tells whether s's PostgreSQL breaker is open.
func breakerOpen(s *cluster.Store) bool {
	return cluster.BreakerState(s, "postgres") == gobreaker.StateOpen
}

func attrs(r slog.Record) []slog.Attr {
	var out []slog.Attr
	r.Attrs(func(a slog.Attr) bool { out = append(out, a); return true })
	return out
}
