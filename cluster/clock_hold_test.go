package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestHoldJudgedOnPostgresClock (cluster, a node reserves on PostgreSQL's
// time; another, whose clock is 3 s ahead of it or 3 s behind, serves the
// buyer's next step): a pay, a cancel or a provider's payment is judged by
// the clock the leader ends holds by, PostgreSQL's, not by the clock of the
// node it reaches. Judged on the node's own, a node 3 s ahead refused a
// hold with up to 3 s to run (not_payable, not_cancellable; a provider's
// payment taken for late: refund_due, the order left to expire), and a node
// 3 s behind took a payment or a cancel for a hold that had ended.
func TestHoldJudgedOnPostgresClock(t *testing.T) {
	const skew = 3 * time.Second
	ns := namespace(t)
	// No leader's round during the test (the first runs as a node opens):
	// a hold still reserved past its end is what a buyer reaches before
	// the leader's next round.
	cfg := func(node string, skew time.Duration) cluster.Config {
		return cluster.Config{NodeID: node, Interval: time.Hour, Now: func() time.Time { return time.Now().Add(skew) }}
	}
	reserver := openStore(t, ns, cfg("reserver", 0))
	t.Cleanup(func() { reserver.Close() })
	nodes := map[time.Duration]*cluster.Store{}
	for _, d := range []time.Duration{skew, -skew} {
		s := openStore(t, ns, cfg(fmt.Sprintf("skewed%+v", d), d))
		t.Cleanup(func() { s.Close() })
		nodes[d] = s
	}
	db := servicetest.Conn(t, ns)
	ctx := context.Background()
	// A hold as long as the skew: on the node ahead it has ended as soon
	// as it is made, and by PostgreSQL's clock it runs for up to 3 s more.
	// A hold of 1 s ends (PostgreSQL's clock) 2 s before the node behind
	// sees it end.
	sales := map[time.Duration]surge.Sale{}
	for d, hold := range map[time.Duration]int64{skew: int64(skew / time.Second), -skew: 1} {
		id, name, stock, limit, price, cur := fmt.Sprintf("hold%d", hold), "Hold", int64(100), int64(1), int64(500), "EUR"
		sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit,
			PriceCents: &price, Currency: &cur, HoldSeconds: &hold}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		createSale(t, reserver, sl)
		sales[d] = sl
	}

	for i, c := range []struct {
		act  string        // pay, cancel, payment (a provider's)
		skew time.Duration // the serving node's clock against PostgreSQL's
	}{
		{"pay", skew}, {"cancel", skew}, {"payment", skew},
		{"pay", -skew}, {"cancel", -skew}, {"payment", -skew},
	} {
		ahead := c.skew > 0
		t.Run(fmt.Sprintf("%s on the node %v off", c.act, c.skew), func(t *testing.T) {
			sl, node := sales[c.skew], nodes[c.skew]
			out, _, err := reserve(reserver, sl.ID, surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
			if err != nil || len(out) != 1 || out[0].Code != surge.CodeReserved {
				t.Fatalf("reserve: %+v, %v", out, err)
			}
			o := out[0].Order
			if !ahead {
				eventually(t, 10*time.Second, "PostgreSQL's clock passes the hold's end", func() error {
					var past bool
					if err := db.QueryRow(ctx, `SELECT clock_timestamp() > $1`, o.ExpiresAt).Scan(&past); err != nil || past {
						return err
					}
					return errors.New("not yet")
				})
			}
			// Asked well within the skew of the hold's end by PostgreSQL's
			// clock, or the machine was too slow to tell.
			if d := time.Since(o.ExpiresAt); (ahead && d > -time.Second) || (!ahead && d > skew-time.Second) {
				t.Skipf("the machine was too slow: %v from the hold's end", d)
			}
			now := time.Now().Add(c.skew) // the serving node's clock
			var (
				got     surge.OrderStatus
				payment surge.PaymentStatus
				refused *surge.Error
			)
			switch c.act {
			case "pay":
				var p surge.Order
				p, err = node.Pay(ctx, o.ID, now)
				got, refused = p.Status, surge.ErrNotPayable
			case "cancel":
				var p surge.Order
				p, err = node.Cancel(ctx, o.ID, now)
				got, refused = p.Status, surge.ErrNotCancellable
			case "payment":
				ev := surge.PaymentEvent{ID: "evt_" + o.ID, Type: surge.PaymentSucceeded, OrderID: o.ID,
					AmountCents: sl.PriceCents, Currency: sl.Currency, Created: now, Provider: "surge"}
				var r surge.PaymentResult
				r, err = node.RecordPayment(ctx, ev, now)
				got, payment = r.Order.Status, r.Payment.Status
			}
			when := fmt.Sprintf("on a node %v off, %v from the hold's end (expires_at %s) by PostgreSQL's clock",
				c.skew, time.Since(o.ExpiresAt).Round(time.Millisecond), surge.FormatTime(o.ExpiresAt))
			switch {
			case err != nil && ahead:
				t.Errorf("%s %s: %v; want it done", c.act, when, err)
			case err != nil && (refused == nil || !surge.HasCode(err, refused.Code)):
				t.Errorf("%s %s: %v; want it refused for the hold's end", c.act, when, err)
			case ahead && (got == surge.OrderReserved || payment == surge.PaymentRefundDue):
				t.Errorf("%s %s: order %s, payment %s; want it done", c.act, when, got, payment)
			case !ahead && refused != nil && err == nil:
				t.Errorf("%s %s: order %s; want %s (the hold ended)", c.act, when, got, refused.Code)
			case !ahead && refused == nil && (payment != surge.PaymentRefundDue || got != surge.OrderReserved):
				t.Errorf("%s %s: payment %s, order %s; want refund_due, the order left reserved (the hold ended)",
					c.act, when, payment, got)
			}
		})
	}
}
