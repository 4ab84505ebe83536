package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// The tests below run one node whose clock (the store's and its engine's
// alike, as on a real machine) is 10 s ahead of PostgreSQL's, or 10 s
// behind, and read PostgreSQL's clock (this machine's) to tell what its
// answers should be.

const nodeSkew = 10 * time.Second

// skewedNode opens a node of ns whose clock is skew off this machine's,
// and its engine; it serves sl once the engine lists it.
func skewedNode(t *testing.T, ns string, skew time.Duration, sl surge.Sale) (*cluster.Store, *engine.Engine) {
	t.Helper()
	now := func() time.Time { return time.Now().Add(skew) }
	s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("skewed%+v", skew), Now: now})
	e, err := engine.Open(context.Background(), s, engine.Config{Now: now, SyncInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })
	createSale(t, s, sl)
	eventually(t, 10*time.Second, "the engine lists the sale", func() error { _, err := e.Sale(sl.ID); return err })
	return s, e
}

// pgNow reads PostgreSQL's clock.
func pgNow(t *testing.T, db *pgx.Conn) time.Time {
	t.Helper()
	var now time.Time
	if err := db.QueryRow(t.Context(), `SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

// newSale is a sale of 10 units, one per buyer.
func newSale(t *testing.T, id string, starts, ends time.Time, hold int64) surge.Sale {
	t.Helper()
	name, stock, limit := "Clock", int64(10), int64(1)
	in := surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &starts, HoldSeconds: &hold}
	if !ends.IsZero() {
		in.EndsAt = &ends
	}
	sl, err := surge.NewSale(in, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func skewName(skew time.Duration) string {
	if skew > 0 {
		return fmt.Sprintf("node %v ahead", skew)
	}
	return fmt.Sprintf("node %v behind", -skew)
}

// TestHoldMeasuredOnPostgresClock (cluster): a hold made on a node whose
// clock is off runs for the sale's hold on PostgreSQL's clock, the one the
// leader ends it by and a pay or cancel judges it by: made (created_at) at
// PostgreSQL's present, it ends (expires_at) a hold later. Stamped with the
// node's clock, a hold of 60 s made on a node 10 s behind ended 50 s after
// it was made, and one made on a node 10 s ahead ran for 70 s.
func TestHoldMeasuredOnPostgresClock(t *testing.T) {
	for _, skew := range []time.Duration{nodeSkew, -nodeSkew} {
		t.Run(skewName(skew), func(t *testing.T) {
			ns := namespace(t)
			const hold = 60
			sl := newSale(t, "hold", time.Now().Add(-time.Hour), time.Time{}, hold)
			_, e := skewedNode(t, ns, skew, sl)
			db := servicetest.Conn(t, ns)
			before := pgNow(t, db)
			out := enginePurchase(t, e, engine.PurchaseRequest{SaleID: sl.ID,
				Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1}})
			after := pgNow(t, db)
			o := out.Order
			if d := o.ExpiresAt.Sub(o.CreatedAt); d != hold*time.Second {
				t.Errorf("order from %s to %s: a hold of %v; want %ds", surge.FormatTime(o.CreatedAt), surge.FormatTime(o.ExpiresAt), d, hold)
			}
			// A second either side: the skew is ten.
			if o.CreatedAt.Before(before.Add(-time.Second)) || o.CreatedAt.After(after.Add(time.Second)) {
				t.Errorf("order made at %s, expiring at %s, on PostgreSQL's clock between %s and %s: its hold runs %v by the clock that ends it; want %ds",
					surge.FormatTime(o.CreatedAt), surge.FormatTime(o.ExpiresAt), surge.FormatTime(before), surge.FormatTime(after),
					o.ExpiresAt.Sub(after).Round(time.Second), hold)
			}
		})
	}
}

// TestSaleEndOnPostgresClock (cluster): a sale ends at its ends_at on
// PostgreSQL's clock, on every node, whatever its own clock reads. A node
// 10 s behind showed a sale that had ended live (GET /v1/sales/{id} and the
// listing), and sold it for 10 s more; a node 10 s ahead showed it ended,
// and refused its purchases, 10 s before its end.
func TestSaleEndOnPostgresClock(t *testing.T) {
	for _, skew := range []time.Duration{nodeSkew, -nodeSkew} {
		ahead := skew > 0
		t.Run(skewName(skew), func(t *testing.T) {
			ns := namespace(t)
			ctx := context.Background()
			// Ahead, read 5 s before the end; behind, once it has passed.
			ends := time.Now().Add(5 * time.Second)
			if !ahead {
				ends = time.Now().Add(time.Second)
			}
			sl := newSale(t, "end", time.Now().Add(-time.Hour), ends, 60)
			_, e := skewedNode(t, ns, skew, sl)
			db := servicetest.Conn(t, ns)
			want, wantCode := surge.SaleLive, surge.CodeReserved
			if !ahead {
				want, wantCode = surge.SaleEnded, surge.CodeEnded
				eventually(t, 10*time.Second, "PostgreSQL's clock passes the sale's end", func() error {
					if !pgNow(t, db).After(sl.EndsAt) {
						return errors.New("not yet")
					}
					return nil
				})
			}
			st, err := e.Sale(sl.ID)
			if err != nil {
				t.Fatal(err)
			}
			listed := e.Sales()
			out, err := e.Purchase(ctx, engine.PurchaseRequest{SaleID: sl.ID, Purchase: surge.Purchase{UserID: "u1", Quantity: 1}})
			if err == nil {
				err = out.Err
			}
			now := pgNow(t, db)
			// Read well within the skew of the end, or the machine was too
			// slow to tell.
			if d := now.Sub(sl.EndsAt); (ahead && d > -time.Second) || (!ahead && d > skew.Abs()-2*time.Second) {
				t.Skipf("the machine was too slow: %v from the end", d)
			}
			when := fmt.Sprintf("on a %s, %v from the end (ends_at %s) by PostgreSQL's clock", skewName(skew),
				now.Sub(sl.EndsAt).Round(time.Millisecond), surge.FormatTime(sl.EndsAt))
			if st.Status != want {
				t.Errorf("sale read %s: %q; want %q", when, st.Status, want)
			}
			if len(listed) != 1 || listed[0].Status != want {
				t.Errorf("sales listed %s: %+v; want the sale %q", when, listed, want)
			}
			if err != nil || out.Code != wantCode {
				t.Errorf("purchase %s: %q, %v; want %q", when, out.Code, err, wantCode)
			}
		})
	}
}

// TestArchiveJudgedOnPostgresClock (cluster): whether a sale may be
// archived (it has ended, or has yet to start) is judged on PostgreSQL's
// clock, not on the clock of the node asked. A node 10 s behind called off
// a sale that had started 3 s before (yet to start by its clock) and
// refused to archive one that had ended; a node 10 s ahead archived a sale
// 5 s before its end.
func TestArchiveJudgedOnPostgresClock(t *testing.T) {
	for _, c := range []struct {
		name         string
		skew         time.Duration
		starts, ends time.Duration // from now; ends 0: none
		want         bool
	}{
		{name: "started 3 s ago", skew: -nodeSkew, starts: -3 * time.Second},
		{name: "ending in 5 s", skew: nodeSkew, starts: -time.Hour, ends: 5 * time.Second},
		{name: "ended 3 s ago", skew: -nodeSkew, starts: -time.Hour, ends: -3 * time.Second, want: true},
	} {
		t.Run(c.name+" on a "+skewName(c.skew), func(t *testing.T) {
			ns := namespace(t)
			var ends time.Time
			if c.ends != 0 {
				ends = time.Now().Add(c.ends)
			}
			sl := newSale(t, "archive", time.Now().Add(c.starts), ends, 60)
			_, e := skewedNode(t, ns, c.skew, sl)
			db := servicetest.Conn(t, ns)
			got, err := e.Archive(context.Background(), sl.ID)
			now := pgNow(t, db)
			// Asked well before the node's clock and PostgreSQL's agree.
			edge := sl.StartsAt
			if c.ends != 0 {
				edge = sl.EndsAt
			}
			if d := now.Sub(edge); d.Abs() < time.Second || d.Abs() > nodeSkew-time.Second {
				t.Skipf("the machine was too slow: %v from the sale's edge", d)
			}
			switch {
			case c.want && (err != nil || !got.Archived):
				t.Errorf("archive %s on a %s: %+v, %v; want it archived (ended by PostgreSQL's clock)", c.name, skewName(c.skew), got, err)
			case !c.want && surge.ErrorCode(err) != surge.CodeNotArchivable:
				t.Errorf("archive %s on a %s: archived %v, %v; want not_archivable (live by PostgreSQL's clock)",
					c.name, skewName(c.skew), got.Archived, err)
			}
		})
	}
}
