package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// guardSale creates sale "g" of stock units, limit per buyer.
func guardSale(t *testing.T, db *postgres.DB, stock, limit int64) surge.Sale {
	t.Helper()
	id, name := "g", "guard"
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSale(context.Background(), sl, 1, nil); err != nil {
		t.Fatal(err)
	}
	return sl
}

var guardSeq int

// ord is a reserved order of user for q units, with key (may be empty).
func ord(sl surge.Sale, user, key string, q int64) surge.Order {
	guardSeq++
	now := time.Now().UTC().Truncate(time.Millisecond)
	return surge.Order{ID: fmt.Sprintf("o%d", guardSeq), SaleID: sl.ID, UserID: user, Quantity: q, IdempotencyKey: key,
		Status: surge.OrderReserved, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// PostgreSQL refuses, writing nothing, any batch that would oversell the
// sale, put a buyer over the limit or give a key a second order, whatever
// Redis decided (issue 9, item 1); units of cancelled and expired orders
// count no more.
func TestInsertGuardsGuarantees(t *testing.T) {
	cases := []struct {
		name   string
		stock  int64
		limit  int64
		before func(sl surge.Sale) []surge.Order // committed first
		settle string                            // "cancel" or "expire" the orders before, if set
		batch  func(sl surge.Sale) []surge.Order
		refuse bool
	}{
		{"WithinStock", 3, 3, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2)} }, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "b", "", 1)} }, false},
		{"OverStock", 3, 3, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2)} }, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "b", "", 1), ord(sl, "c", "", 1)} }, true},
		{"OverStockInOneBatch", 3, 3, nil, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2), ord(sl, "b", "", 2)} }, true},
		{"CancelledUnitsFree", 3, 3, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 3)} }, "cancel",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "b", "", 3)} }, false},
		{"ExpiredUnitsFree", 3, 3, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 3)} }, "expire",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 3)} }, false},
		{"OverLimit", 10, 2, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2)} }, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "b", "", 1), ord(sl, "a", "", 1)} }, true},
		{"OverLimitInOneBatch", 10, 2, nil, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 1), ord(sl, "a", "", 2)} }, true},
		{"LimitAfterCancel", 10, 2, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2)} }, "cancel",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "", 2)} }, false},
		{"KeyReused", 10, 5, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "k", 1)} }, "cancel",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "k", 1)} }, true},
		{"SameKeyOtherBuyer", 10, 5, func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "a", "k", 1)} }, "",
			func(sl surge.Sale) []surge.Order { return []surge.Order{ord(sl, "b", "k", 1)} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			sl := guardSale(t, db, tc.stock, tc.limit)
			var before []surge.Order
			if tc.before != nil {
				before = tc.before(sl)
				if _, _, err := db.InsertOrders(ctx, sl.ID, 1, before, nil); err != nil {
					t.Fatalf("orders before: %v", err)
				}
			}
			switch tc.settle {
			case "cancel":
				for _, o := range before {
					if _, err := db.Settle(ctx, o.ID, surge.OrderCancelled, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
			case "expire":
				l, _, err := db.Acquire(ctx, "jobs", "me", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := db.Expire(ctx, time.Now().Add(2*time.Hour), l, 100); err != nil || len(got) != len(before) {
					t.Fatalf("expire: %v, %v", got, err)
				}
			}
			batch := tc.batch(sl)
			_, _, err := db.InsertOrders(ctx, sl.ID, 1, batch, nil)
			if tc.refuse != errors.Is(err, postgres.ErrRefused) || (!tc.refuse && err != nil) {
				t.Fatalf("insert: err = %v, want refused %v", err, tc.refuse)
			}
			for _, o := range batch {
				_, err := db.Order(ctx, o.ID)
				if written := err == nil; written == tc.refuse {
					t.Errorf("order %s written = %v after a refusal = %v (%v)", o.ID, written, tc.refuse, err)
				}
			}
		})
	}
}

// ever counts every unit ever inserted, and only grows: a cancel gives
// stock back but does not lower it; a refused or fenced batch adds nothing.
func TestEverOnlyGrows(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	sl := guardSale(t, db, 5, 5)
	a := ord(sl, "a", "", 2)
	ever, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{a}, nil)
	if err != nil || ever != 2 {
		t.Fatalf("first insert: ever %d, %v; want 2", ever, err)
	}
	if _, err := db.Settle(ctx, a.ID, surge.OrderCancelled, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{ord(sl, "b", "", 6)}, nil); !errors.Is(err, postgres.ErrRefused) {
		t.Fatalf("over stock: %v", err)
	}
	ever, _, err = db.InsertOrders(ctx, sl.ID, 1, []surge.Order{ord(sl, "b", "", 5)}, nil)
	if err != nil || ever != 7 {
		t.Fatalf("after a cancel: ever %d, %v; want 7", ever, err)
	}
	row, err := db.Sale(ctx, sl.ID)
	if err != nil || row.Ever != 7 {
		t.Errorf("sale row: ever %d, %v; want 7", row.Ever, err)
	}
}

// A hold past expires_at is expired for Pay and Cancel, whether or not the
// leader's expiry has run (issue 9, item 11).
func TestSettleAfterHoldEnded(t *testing.T) {
	for _, st := range []surge.OrderStatus{surge.OrderPaid, surge.OrderCancelled} {
		t.Run(string(st), func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			sl := guardSale(t, db, 5, 5)
			o := ord(sl, "a", "", 1)
			if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{o}, nil); err != nil {
				t.Fatal(err)
			}
			got, err := db.Settle(ctx, o.ID, st, o.ExpiresAt)
			if !errors.Is(err, postgres.ErrNotReserved) || got.Status != surge.OrderReserved {
				t.Errorf("at expires_at: %+v, %v; want ErrNotReserved", got, err)
			}
			got, err = db.Settle(ctx, o.ID, st, o.ExpiresAt.Add(-time.Millisecond))
			if err != nil || got.Status != st {
				t.Errorf("just before expires_at: %+v, %v; want %s", got, err, st)
			}
		})
	}
}
