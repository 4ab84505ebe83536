package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestInsertOrdersRoundTrip: whichever way InsertOrders sends a batch (its
// text columns joined and its times once, or one array per column when the
// values do not allow it), every order reads back as given, an empty key
// as no key.
func TestInsertOrdersRoundTrip(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	later := now.Add(time.Hour)
	for _, c := range []struct {
		name string
		keys []string
		// created of each order, as an offset from now (the same for all
		// lets the times go once)
		created []time.Duration
	}{
		{"one order without a key", []string{""}, nil},
		{"one order with a key", []string{"k1"}, nil},
		{"keys and no keys", []string{"", "k1", "", "k2", ""}, nil},
		{"keys with the characters of array literals", []string{`a,"b"\{c} d`, `NULL`, ` `, `'x'`}, nil},
		{"times differ", []string{"k1", ""}, []time.Duration{0, time.Second}},
		{"a key with a separator", []string{"a\nb", "c\td"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			sl := sale(t, db)
			var want []surge.Order
			for i, k := range c.keys {
				created := now
				if c.created != nil {
					created = now.Add(c.created[i])
				}
				want = append(want, surge.Order{ID: fmt.Sprintf("o%d", i), SaleID: sl.ID, UserID: fmt.Sprintf("u%d", i),
					Quantity: 1, Status: surge.OrderReserved, IdempotencyKey: k, CreatedAt: created, ExpiresAt: later})
			}
			ever, _, err := db.InsertOrders(ctx, sl.ID, 1, want, nil)
			if err != nil || ever != int64(len(want)) {
				t.Fatalf("InsertOrders: ever %d, %v; want %d", ever, err, len(want))
			}
			var got []surge.Order
			if err := db.Orders(ctx, sl.ID, func(o surge.Order) error { got = append(got, o); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d orders read back, want %d", len(got), len(want))
			}
			for i := range want {
				if g, w := got[i], want[i]; g.ID != w.ID || g.UserID != w.UserID || g.IdempotencyKey != w.IdempotencyKey ||
					g.Quantity != w.Quantity || g.Status != w.Status || !g.CreatedAt.Equal(w.CreatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
					t.Errorf("order %d reads back as %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
