package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// TestLeaderAheadExpiresNoHoldEarly (cluster, the leader's clock 3 s
// ahead of the other node's and of PostgreSQL's): a buyer who reserved on
// the other node and pays there 2 s before the expires_at they were given
// must be paid. The leader expired holds by its own clock, so it ended
// this one 3 s early and the payment was refused not_payable.
func TestLeaderAheadExpiresNoHoldEarly(t *testing.T) {
	ns := namespace(t)
	const ahead = 3 * time.Second
	leader := openStore(t, ns, cluster.Config{NodeID: "ahead", Interval: 100 * time.Millisecond,
		Now: func() time.Time { return time.Now().Add(ahead) }})
	t.Cleanup(func() { leader.Close() })
	eventuallyLeads(t, leader, 10*time.Second, "the node whose clock is ahead leads")
	other := openStore(t, ns, cluster.Config{NodeID: "other", Interval: 100 * time.Millisecond, NoExpiry: true})
	t.Cleanup(func() { other.Close() })

	id, name, stock, hold := "ahead", "Ahead", int64(1), int64(5)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, other, sl)
	out, _, err := reserve(other, id, surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 1})
	if err != nil || len(out) != 1 || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", out, err)
	}
	o := out[0].Order
	// The leader's clock passes expires_at 2 s before the buyer's does.
	time.Sleep(time.Until(o.ExpiresAt.Add(-ahead / 2)))
	if !time.Now().Before(o.ExpiresAt.Add(-time.Second)) {
		t.Skip("the machine was too slow to pay in time")
	}
	paid, err := other.Pay(context.Background(), o.ID, time.Now())
	if err != nil {
		t.Fatalf("paid %s before its expires_at %s (the leader's clock %s ahead): %v",
			time.Now().UTC().Format(time.RFC3339Nano), o.ExpiresAt.Format(time.RFC3339Nano), ahead, err)
	}
	if paid.Status != surge.OrderPaid {
		t.Fatalf("paid order: %+v", paid)
	}
}
