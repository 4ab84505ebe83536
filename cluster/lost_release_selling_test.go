package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/redis"
)

// TestRolledBackReleasesComeBackWhileSelling: as
// TestRolledBackReleasesComeBack, Redis rolls back (a replica behind is
// promoted) to before some cancels and loses only their releases, but the
// sale is still selling: reservations of the last seconds wait to be
// confirmed, so the sale is not idle and the leader's check of idle sales
// never looked at it. The units stayed off sale, and their buyers at their
// limit, until the sweep, a thousand held orders a round, reached each
// order: minutes for a large sale. Two rounds must give them back, counting
// the reservations in flight as Redis's own.
func TestRolledBackReleasesComeBackWhileSelling(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	rc, err := redis.Dial(ctx, redisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Rounds are the test's; the reservations stay unconfirmed (busy) for
	// ConfirmAfter, as those of a sale selling do.
	cfg := cluster.Config{NodeID: "a", Interval: time.Hour, LeaseTTL: time.Minute, NoExpiry: true, ConfirmAfter: time.Minute}
	a := openStore(t, ns, cfg)
	defer a.Close()
	eventuallyLeads(t, a, 10*time.Second, "a leads")
	const stock, sold, cancels = 30000, 20000, 20
	sl := mustSale(t, a, "w", stock, 1)
	// More held orders than the sweep reads in two rounds (about 1,000 each).
	var cancel []surge.Order
	for b := range sold / 500 {
		ps := make([]surge.Purchase, 500)
		for i := range ps {
			ps[i] = surge.Purchase{UserID: fmt.Sprintf("u%05d", b*500+i), IdempotencyKey: "k", Quantity: 1}
		}
		out, _, err := reserve(a, sl.ID, ps...)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Code != surge.CodeReserved {
				t.Fatalf("purchase %d of batch %d: %+v", i, b, o)
			}
			if (b*500+i)%(sold/cancels) == 0 {
				cancel = append(cancel, o.Order)
			}
		}
	}
	promote := replicaOf(t, rc, ns) // the replica has everything up to here
	for _, o := range cancel {
		if _, err := a.Cancel(ctx, o.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	promote()
	if rem, err := a.Remaining(ctx, sl.ID); err != nil || rem != stock-sold {
		t.Fatalf("fixture: Remaining = %d, %v after the rollback; want %d (the releases lost)", rem, err, stock-sold)
	}

	for i := range 2 {
		if !cluster.Round(ctx, a) {
			t.Fatalf("round %d: a could not lead", i)
		}
	}
	if rem, err := a.Remaining(ctx, sl.ID); err != nil || rem != stock-sold+cancels {
		t.Errorf("two leader rounds after the rollback: Remaining = %d, %v; want %d, the %d units cancelled back on sale",
			rem, err, stock-sold+cancels, cancels)
	}
	// Every buyer who cancelled may buy again (limit 1).
	for _, o := range cancel {
		out := settled(t, a, sl.ID, surge.Purchase{UserID: o.UserID, IdempotencyKey: "k2", Quantity: 1})
		if out.Code != surge.CodeReserved {
			t.Errorf("%s buys again after cancelling: %+v, want reserved", o.UserID, out)
			break
		}
	}
}
