package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
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
	ctx := context.Background()
	s := openStore(t, ns, cluster.Config{Interval: 100 * time.Millisecond, CallTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	db := servicetest.Conn(t, ns)
	hold := int64(1)
	mk := func(id string, stock int64) surge.Sale {
		name := id
		sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSale(ctx, sl); err != nil {
			t.Fatal(err)
		}
		return sl
	}
	stuck, other := mk("stuck", 1), mk("other", 3)
	stall(t, db, ns, "BEFORE UPDATE ON orders", "NEW.status = 'expired' AND NEW.sale_id = 'stuck'", 2*time.Second)
	buy := func(sl surge.Sale, n int) {
		var ps []surge.Purchase
		for i := range n {
			ps = append(ps, surge.Purchase{UserID: fmt.Sprintf("%s-u%d", sl.ID, i), Quantity: 1})
		}
		out, _, err := reserve(s, sl.ID, ps...)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Code != surge.CodeReserved {
				t.Fatalf("%s purchase %d: %+v", sl.ID, i, o)
			}
		}
	}
	buy(stuck, 1) // due first
	time.Sleep(50 * time.Millisecond)
	buy(other, 3)
	eventuallyRemaining(t, s, other.ID, 3, 15*time.Second, "the other sale's holds expired past the stuck one")
}
