package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestRemainingWithoutRedisCostsNoOrderScan: while Redis is down a node
// reads each sale's units left from PostgreSQL: for every sale at every
// SyncInterval (500 ms), and again after every batch that failed. That
// read summed the quantities of every live order of the sale, a scan that
// grows with the sale (120-490 ms for 300,000 orders on the development
// machine), so a Redis outage kept each node scanning its large sales'
// orders back to back, a connection of its pool each, loading the
// PostgreSQL that cancels, payments and the leader still need. The sale
// row holds the same figure (stock less sold, kept by every insert and
// settle under the row's lock): the read costs what a read of one order
// does, however many orders the sale has.
func TestRemainingWithoutRedisCostsNoOrderScan(t *testing.T) {
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour})
	defer s.Close()
	const stock, orders = 1000000, 200000
	sl := mustSale(t, s, "large", stock, 1)
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "first", IdempotencyKey: "k", Quantity: 1})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v %v", out, err)
	}
	// A large past sale: its orders written straight into PostgreSQL,
	// with the sale row's counts the guard keeps.
	ctx := context.Background()
	db := servicetest.Conn(t, ns)
	if _, err := db.Exec(ctx, `INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
		SELECT 'o' || g, $1, 'u' || g, 1, 'paid', 'k', now(), now() + interval '1 hour' FROM generate_series(1, $2::int) g`,
		sl.ID, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE sales SET sold = sold + $2, ever = ever + $2 WHERE id = $1`, sl.ID, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `ANALYZE orders`); err != nil {
		t.Fatal(err)
	}
	rp.Cut()
	// best is the quickest of five tries of f: the load of a shared
	// machine only ever adds.
	best := func(f func() error) time.Duration {
		t.Helper()
		var d time.Duration
		for i := range 5 {
			start := time.Now()
			if err := f(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); i == 0 || took < d {
				d = took
			}
		}
		return d
	}
	var rem int64
	remaining := best(func() (err error) {
		rem, err = s.Remaining(ctx, sl.ID)
		return err
	})
	if want := int64(stock - orders - 1); rem != want {
		t.Errorf("remaining with Redis down: %d, want %d", rem, want)
	}
	order := best(func() error { _, err := s.Order(ctx, out[0].Order.ID); return err })
	t.Logf("with Redis down, a sale of %d orders: remaining read in %v, one order in %v", orders+1, remaining, order)
	if remaining > 5*order+10*time.Millisecond {
		t.Errorf("with Redis down, the remaining of a sale of %d orders took %v (the quickest of 5), one order's read %v: it grows with the sale's orders",
			orders+1, remaining, order)
	}
}
