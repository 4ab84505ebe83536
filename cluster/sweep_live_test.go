package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestSweepReachesLiveSaleEveryRound: units Redis still holds for orders
// PostgreSQL ended (a node died between the two) are off sale until the
// leader's sweep gives them back. Reading a bounded number of sales a
// round in turn kept idle sales from slowing the round, but left a live
// sale among 2,000 past ones swept once every eight rounds: its units came
// back minutes late, in the middle of its sale. A sale that sold within
// its hold time (plus a margin) is swept every round.
func TestSweepReachesLiveSaleEveryRound(t *testing.T) {
	const idle = 2000
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true})
	defer s.Close()
	ctx := context.Background()
	pastSales(t, s, idle)
	mustSale(t, s, "live", 40, 1)
	round := func() {
		t.Helper()
		if !cluster.Round(ctx, s) {
			t.Fatal("the store could not take the leader's lease")
		}
	}
	round()
	var orders []string
	for i := range 20 {
		out, _, err := reserve(s, "live", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("reserve: %+v %v", out, err)
		}
		orders = append(orders, out[0].Order.ID)
	}
	round() // the leader sees the sale sell
	db := servicetest.Conn(t, ns)
	endInTwoBatches(t, db, s, orders, 20, func(batch int, rem, want int64, err error) {
		t.Errorf("batch %d: after one round of the leader, %d units of the live sale are on sale (%v); want %d: the units of 5 orders PostgreSQL ended stay off sale while %d idle sales are swept in turn",
			batch, rem, err, want, idle)
	})
}

// TestSweepReachesLiveSaleAfterFailover: the sweep tells a selling sale by
// its count of units sold changing under the leader's eyes, so a new
// leader (the old one died, the very case that leaves units taken) took a
// sale that had sold just before, and sold no more, for a past one: a
// sold-out sale whose units a dead node left off sale sells nothing until
// they come back, and among 2,000 past sales they came back once every
// eight rounds. A sale whose latest hold ended less than five minutes ago,
// or not yet, is swept every round from the new leader's first, also when
// its hold time was shortened after it sold (the orders keep theirs).
func TestSweepReachesLiveSaleAfterFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		ago  time.Duration // when the sale sold out, its hold 1 h then
		hold int64         // its hold time (s) at the failover
	}{
		{"sold out just now", 0, 3600},
		{"sold out 20 min ago, hold shortened to 1 min since", 20 * time.Minute, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sweepAfterFailover(t, tc.ago, tc.hold)
		})
	}
}

func sweepAfterFailover(t *testing.T, ago time.Duration, hold int64) {
	const idle = 2000
	ns, old, reserve := liveAmongPast(t, idle)
	ctx := context.Background()
	var orders []string
	for i := range 20 { // sold out
		orders = append(orders, reserve(fmt.Sprintf("u%d", i), time.Now().Add(-ago)))
	}
	db := servicetest.Conn(t, ns)
	if _, err := db.Exec(ctx, `UPDATE sales SET hold_seconds = $1 WHERE id = 'live'`, hold); err != nil {
		t.Fatal(err)
	}
	old.Close() // the leader dies
	s := openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true})
	defer s.Close()
	endInTwoBatches(t, db, s, orders, 0, func(batch int, rem, want int64, err error) {
		t.Errorf("batch %d: after one round of a new leader, %d units of the sold-out sale are on sale (%v); want %d: the units of 5 orders PostgreSQL ended stay off sale while %d past sales are swept in turn",
			batch, rem, err, want, idle)
	})
}

// TestSweepReachesLiveSaleAfterFailoverHoldShortened: a new leader takes
// when the hold of a sale's latest order ends for when its holds end, but
// a hold time shortened between two orders (PATCH hold_seconds applies to
// reservations made after it) leaves the earlier orders held long after
// the latest one's ended. Such a sale, sold out, whose earlier orders a
// dead node ended behind Redis's back, was taken for a past one: its units
// came back once every few rounds while its buyers were still waiting.
func TestSweepReachesLiveSaleAfterFailoverHoldShortened(t *testing.T) {
	const idle = 2000
	ns, old, reserve := liveAmongPast(t, idle)
	ctx := context.Background()
	var orders []string
	for i := range 19 { // held for an hour from 15 minutes ago
		orders = append(orders, reserve(fmt.Sprintf("u%d", i), time.Now().Add(-15*time.Minute)))
	}
	minute := int64(60)
	if _, err := old.UpdateSale(ctx, "live", surge.SalePatch{HoldSeconds: &minute}, surge.At(time.Now().Add(-12*time.Minute))); err != nil {
		t.Fatal(err)
	}
	// The last unit, held a minute and paid: its hold ended 9 minutes ago.
	if _, err := old.Pay(ctx, reserve("u19", time.Now().Add(-10*time.Minute)), time.Now().Add(-10*time.Minute+time.Second)); err != nil {
		t.Fatal(err)
	}
	old.Close() // the leader dies
	s := openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true})
	defer s.Close()
	db := servicetest.Conn(t, ns)
	endInTwoBatches(t, db, s, orders, 0, func(batch int, rem, want int64, err error) {
		t.Errorf("batch %d: after one round of a new leader, %d units of the sold-out sale are on sale (%v); want %d: its orders still held for 45 minutes were missed because its latest order's 1-minute hold ended 9 minutes ago (it was paid), and the units of 5 orders PostgreSQL ended stay off sale while %d past sales are swept in turn",
			batch, rem, err, want, idle)
	})
}

// endInTwoBatches ends orders[0:5], then orders[5:10], of sale "live" in
// PostgreSQL behind Redis's back, as a dead node's statement did
// (postgres.Settle) and no more, each followed by one round of s as the
// leader: a sale read once every few rounds misses one of the two. After
// each, the batch's units must be back on sale beside the onSale before
// them; missed reports (batch 1 or 2) what was on sale instead.
func endInTwoBatches(t *testing.T, db *pgx.Conn, s *cluster.Store, orders []string, onSale int64, missed func(batch int, rem, want int64, err error)) {
	t.Helper()
	ctx := context.Background()
	for batch := range 2 {
		ended := orders[batch*5 : batch*5+5]
		tag, err := db.Exec(ctx, `WITH x AS (UPDATE orders SET status = 'cancelled', updated_at = now()
				WHERE id = ANY($1) AND status = 'reserved' RETURNING quantity)
			UPDATE sales SET sold = sold - (SELECT sum(quantity) FROM x) WHERE id = 'live'`, ended)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("end orders behind Redis's back: %v %v", tag, err)
		}
		if !cluster.Round(ctx, s) {
			t.Fatal("the store could not take the leader's lease")
		}
		want := onSale + int64(5*(batch+1))
		if rem, err := s.Remaining(ctx, "live"); err != nil || rem != want {
			missed(batch+1, rem, want, err)
		}
	}
}

// liveAmongPast opens, in a namespace of its own, a store that leads (and
// is to die) beside past past sales, and creates sale "live" there: 20
// units, one a buyer, on sale for the last hour, held an hour. reserve
// reserves one unit of it for user, as at.
func liveAmongPast(t *testing.T, past int) (ns string, old *cluster.Store, reserve func(user string, at time.Time) string) {
	t.Helper()
	ctx := context.Background()
	ns = namespace(t)
	old = openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true})
	pastSales(t, old, past)
	id, name, stock, limit, hour, start := "live", "live", int64(20), int64(1), int64(3600), time.Now().Add(-time.Hour)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start, HoldSeconds: &hour}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	return ns, old, func(user string, at time.Time) string {
		t.Helper()
		out, _, err := old.Reserve(ctx, "live", []surge.Purchase{{UserID: user, Quantity: 1}}, surge.At(at))
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("reserve: %+v %v", out, err)
		}
		return out[0].Order.ID
	}
}
