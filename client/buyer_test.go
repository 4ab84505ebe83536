package client_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// Purchases as buyers identified by JWT and by X-User-ID: reserve,
// replay, key reused for another quantity, per-user limit, sold out, and
// the refusals before anything is sent.
func TestPurchase(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	createSale(t, admin, "drop", 4, 2)
	alice := admin.AsBuyer(buyerJWT(t, "alice"))
	bob := admin.AsUser("bob")
	var first client.Purchase // alice's first purchase

	for _, tt := range []struct {
		name       string
		c          *client.Client
		opt        client.PurchaseOptions
		key        func() string // the key to send, when it depends on an earlier step
		wantStatus int           // 0: 201
		wantCode   surge.Code
		wantIs     error
		check      func(t *testing.T, p client.Purchase)
	}{
		{name: "reserve with a generated key", c: alice, check: func(t *testing.T, p client.Purchase) {
			if !surge.ValidKey(p.IdempotencyKey) || p.Replayed || p.Order.UserID != "alice" || p.Order.Quantity != 1 || p.Order.Status != "reserved" {
				t.Errorf("purchase %+v", p)
			}
			first = p
		}},
		{name: "replay with the same key", c: alice, key: func() string { return first.IdempotencyKey }, check: func(t *testing.T, p client.Purchase) {
			if !p.Replayed || p.Order != first.Order {
				t.Errorf("replay %+v, want the first order %+v replayed", p, first.Order)
			}
		}},
		{name: "same key, other quantity", c: alice, opt: client.PurchaseOptions{Quantity: 2}, key: func() string { return first.IdempotencyKey },
			wantStatus: 422, wantCode: surge.CodeIdempotencyMismatch, wantIs: surge.ErrIdempotencyMismatch},
		{name: "X-User-ID buyer, two units", c: bob, opt: client.PurchaseOptions{Quantity: 2, IdempotencyKey: "bob-1"}, check: func(t *testing.T, p client.Purchase) {
			if p.IdempotencyKey != "bob-1" || p.Order.UserID != "bob" || p.Order.Quantity != 2 || p.Order.IdempotencyKey != "bob-1" {
				t.Errorf("purchase %+v", p)
			}
		}},
		{name: "over the per-user limit", c: bob, wantStatus: 409, wantCode: surge.CodeLimitReached},
		{name: "sold out", c: admin.AsUser("carol"), opt: client.PurchaseOptions{Quantity: 2}, wantStatus: 409, wantCode: surge.CodeSoldOut},
		{name: "unknown sale", c: alice, wantStatus: 404, wantCode: surge.CodeSaleNotFound, wantIs: surge.ErrSaleNotFound},
		{name: "invalid JWT", c: admin.AsBuyer("not.a.jwt"), wantStatus: 401, wantCode: "unauthenticated"},
		{name: "no buyer", c: admin, wantIs: client.ErrNoBuyer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sale := "drop"
			if tt.wantCode == surge.CodeSaleNotFound {
				sale = "nope"
			}
			opt := tt.opt
			if tt.key != nil {
				opt.IdempotencyKey = tt.key()
			}
			p, err := tt.c.Purchase(t.Context(), sale, opt)
			if tt.wantStatus == 0 && tt.wantIs == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, p)
				return
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err %v, want one that Is %v", err, tt.wantIs)
			}
			if tt.wantStatus == 0 {
				return
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tt.wantStatus || ae.Code != string(tt.wantCode) || ae.Attempts != 1 || ae.Message == "" {
				t.Fatalf("err %#v, want HTTP %d %s after one attempt", err, tt.wantStatus, tt.wantCode)
			}
			if !surge.HasCode(err, tt.wantCode) || surge.ErrorCode(err) != tt.wantCode {
				t.Errorf("surge.HasCode/ErrorCode do not see %s in %v", tt.wantCode, err)
			}
			if p.IdempotencyKey == "" {
				t.Error("a failed purchase does not report the key it sent")
			}
		})
	}
	if n := s.count("POST /v1/sales/drop/purchases"); n != 7 {
		t.Errorf("%d purchases reached the server, want 7 (the last was refused before sending)", n)
	}
	if orders := exported(t, admin, "drop"); len(orders) != 2 {
		t.Errorf("export: %d orders, want 2: %+v", len(orders), orders)
	}
}

// Reading, cancelling and paying orders: the buyer sees and cancels only
// their own, the operator any; pay is the operator's.
func TestOrders(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	createSale(t, admin, "tees", 10, 5)
	alice, bob := admin.AsBuyer(buyerJWT(t, "alice")), admin.AsUser("bob")
	ctx := t.Context()
	buy := func() string {
		t.Helper()
		p, err := alice.Purchase(ctx, "tees", client.PurchaseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Order.ID
	}
	toCancel, toPay := buy(), buy()

	for _, tt := range []struct {
		name       string
		call       func() (string, error) // the order's status
		wantStatus string
		wantIs     error
	}{
		{"buyer reads own", func() (string, error) { o, err := alice.Order(ctx, toCancel); return o.Status, err }, "reserved", nil},
		{"other buyer reads: 404", func() (string, error) { o, err := bob.Order(ctx, toCancel); return o.Status, err }, "", surge.ErrOrderNotFound},
		{"admin reads", func() (string, error) { o, err := admin.Order(ctx, toCancel); return o.Status, err }, "reserved", nil},
		{"unknown order", func() (string, error) { o, err := admin.Order(ctx, "o_nope"); return o.Status, err }, "", surge.ErrOrderNotFound},
		{"other buyer cancels: 404", func() (string, error) { o, err := bob.CancelOrder(ctx, toCancel); return o.Status, err }, "", surge.ErrOrderNotFound},
		{"buyer cancels", func() (string, error) { o, err := alice.CancelOrder(ctx, toCancel); return o.Status, err }, "cancelled", nil},
		{"cancel again", func() (string, error) { o, err := alice.CancelOrder(ctx, toCancel); return o.Status, err }, "", surge.ErrNotCancellable},
		{"pay a cancelled order", func() (string, error) { o, err := admin.PayOrder(ctx, toCancel); return o.Status, err }, "", surge.ErrNotPayable},
		{"pay without the token", func() (string, error) {
			o, err := client.New(s.url, "").PayOrder(ctx, toPay)
			return o.Status, err
		}, "", client.ErrNoAdminToken},
		{"pay with a wrong token", func() (string, error) {
			o, err := client.New(s.url, "wrong-token-wrong-token").PayOrder(ctx, toPay)
			return o.Status, err
		}, "", &surge.Error{Code: "unauthenticated"}},
		{"admin pays", func() (string, error) { o, err := admin.PayOrder(ctx, toPay); return o.Status, err }, "paid", nil},
		{"pay again", func() (string, error) { o, err := admin.PayOrder(ctx, toPay); return o.Status, err }, "", surge.ErrNotPayable},
		{"buyer reads paid", func() (string, error) { o, err := alice.Order(ctx, toPay); return o.Status, err }, "paid", nil},
		{"admin cancels paid", func() (string, error) { o, err := admin.CancelOrder(ctx, toPay); return o.Status, err }, "", surge.ErrNotCancellable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, err := tt.call()
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("err %v, want one that Is %v", err, tt.wantIs)
				}
				return
			}
			if err != nil || status != tt.wantStatus {
				t.Fatalf("status %q, err %v; want %q", status, err, tt.wantStatus)
			}
		})
	}
	var ae *client.APIError
	if _, err := bob.Order(ctx, toPay); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("another buyer's order: %v, want HTTP 404", err)
	}
}

// The operator's calls on sales: create, read, list, steer (PATCH),
// export; pausing refuses purchases until resumed.
func TestAdminSales(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	ctx := t.Context()
	created := createSale(t, admin, "hats", 5, 5)
	if created.ID != "hats" || created.Stock != 5 || created.Remaining != 5 || created.Status != "live" || created.PriceCents != 1500 {
		t.Fatalf("created %+v", created)
	}
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("hats"), Name: new("again"), Stock: new(int64(1))}); !errors.Is(err, surge.ErrSaleExists) {
		t.Errorf("create again: %v, want sale_exists", err)
	}
	if _, err := client.New(s.url, "").CreateSale(ctx, api.NewSale{Name: new("x"), Stock: new(int64(1))}); !errors.Is(err, client.ErrNoAdminToken) {
		t.Errorf("create without a token: %v", err)
	}
	if _, err := admin.CreateSale(ctx, api.NewSale{Name: new("x")}); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("create without stock: %v, want invalid_request", err)
	}
	buyer := admin.AsUser("dana")

	for _, tt := range []struct {
		name  string
		patch api.SalePatch
		want  func(api.Sale) bool
		buy   surge.Code // what a purchase then gets ("reserved": 201)
	}{
		{"pause", api.SalePatch{Paused: new(true)}, func(s api.Sale) bool { return s.Status == "paused" }, surge.CodePaused},
		{"resume and raise the stock", api.SalePatch{Paused: new(false), Stock: new(int64(8))},
			func(s api.Sale) bool { return s.Status == "live" && s.Stock == 8 }, surge.CodeReserved},
		{"rename", api.SalePatch{Name: new("Hats!")}, func(s api.Sale) bool { return s.Name == "Hats!" && s.Stock == 8 }, surge.CodeReserved},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := admin.UpdateSale(ctx, "hats", tt.patch)
			if err != nil || !tt.want(got) {
				t.Fatalf("update: %+v, %v", got, err)
			}
			if read, err := buyer.Sale(ctx, "hats"); err != nil || read != got {
				t.Errorf("read back %+v (%v), want %+v", read, err, got)
			}
			_, err = buyer.Purchase(ctx, "hats", client.PurchaseOptions{})
			if code := surge.ErrorCode(err); (tt.buy == surge.CodeReserved && err != nil) || (tt.buy != surge.CodeReserved && code != tt.buy) {
				t.Errorf("purchase: %v, want %s", err, tt.buy)
			}
		})
	}
	if _, err := admin.UpdateSale(ctx, "hats", api.SalePatch{Stock: new(int64(1)), PerUserLimit: new(int64(1))}); !surge.HasCode(err, surge.CodeStockBelowSold) {
		t.Errorf("stock below the units sold: %v", err)
	}
	if sales, err := buyer.Sales(ctx); err != nil || len(sales) != 1 || sales[0].ID != "hats" || sales[0].Remaining != 6 {
		t.Errorf("Sales = %+v, %v", sales, err)
	}
	orders := exported(t, admin, "hats")
	if len(orders) != 2 || orders[0].UserID != "dana" || orders[0].SaleID != "hats" {
		t.Errorf("export %+v", orders)
	}
	if err := client.New(s.url, "").AsUser("dana").Orders(ctx, "hats", func(api.Order) error { return nil }); !errors.Is(err, client.ErrNoAdminToken) {
		t.Errorf("export without the token: %v", err)
	}
	if err := admin.Orders(ctx, "nope", func(api.Order) error { return nil }); !errors.Is(err, surge.ErrSaleNotFound) {
		t.Errorf("export of no sale: %v", err)
	}
}
