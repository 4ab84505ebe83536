package main

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestCrashAfterEachChange SIGKILLs the real binary right after each of
// the acknowledged changes the spike tests make rarely or never (a cancel,
// an operator's payment, a webhook's payment, an expiry pass, a PATCH of
// the stock and the limit down, an archive) and checks after each restart
// that every one of them is there, and that the guarantees still hold:
// no unit sold twice, the lowered limit, every key replaying its order.
func TestCrashAfterEachChange(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"journal", nil},
		// Starts from the ledger image the store refreshes once idle (each
		// crash waits for it), and replays answered from disk.
		{"image and keys on disk", []string{"--ledger-image-min", "1", "--idempotency-ttl", "1ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) { crashSteps(t, tc.flags) })
	}
}

func crashSteps(t *testing.T, flags []string) {
	idle := len(flags) > 0 && flags[0] == "--ledger-image-min"
	const secret = "whsec_crash_steps_0123456789"
	dataDir, token := t.TempDir(), "steps-admin-token"
	extra := append([]string{"--payment-webhook-secret", secret}, flags...)
	p := startProc(t, dataDir, token, extra...)
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}

	admin := func() *client.Client { return client.New(p.base, token) }
	sale, err := admin().CreateSale(ctx, api.NewSale{Name: new("steps"), Stock: new(int64(10)), PerUserLimit: new(int64(3)),
		HoldSeconds: new(int64(3600)), PriceCents: new(int64(100)), Currency: new("EUR")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin().CreateSale(ctx, api.NewSale{Name: new("other"), StartsAt: new(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)),
		Stock: new(int64(5)), PerUserLimit: new(int64(1))})
	if err != nil {
		t.Fatal(err)
	}

	// What the server acknowledged: each order's status, its key, and
	// the sale's stock and limit.
	status := map[string]string{}
	qty := map[string]int64{}
	keys := map[string]intent{}
	stock, limit := int64(10), int64(3)
	archived := false

	buy := func(user, key string, n int64) string {
		t.Helper()
		it := intent{user: user, key: key, qty: n}
		a, err := purchase(ctx, hc, p.base, sale.ID, it)
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("purchase %s/%s of %d: %d %s %v", user, key, n, a.status, a.body, err)
		}
		status[a.order.ID], qty[a.order.ID], keys[a.order.ID] = "reserved", n, it
		return a.order.ID
	}
	check := func(step string) {
		t.Helper()
		orders := exportOrders(t, p.base, token, sale.ID)
		var live int64
		for id, want := range status {
			o, ok := orders[id]
			switch {
			case !ok:
				t.Errorf("after %s and a crash: order %s (%s) is gone", step, id, want)
			case o.Status != want:
				t.Errorf("after %s and a crash: order %s is %s, acknowledged %s", step, id, o.Status, want)
			}
		}
		for id, o := range orders {
			if _, ok := status[id]; !ok {
				t.Errorf("after %s and a crash: order %s (%s) was never acknowledged", step, id, o.Status)
			}
			if o.Status == "reserved" || o.Status == "paid" {
				live += o.Quantity
			}
		}
		s, err := admin().Sale(ctx, sale.ID)
		if err != nil {
			t.Fatalf("after %s: %v", step, err)
		}
		if s.Stock != stock || s.PerUserLimit != limit || s.Remaining != stock-live {
			t.Errorf("after %s and a crash: stock %d limit %d remaining %d; acknowledged stock %d limit %d, orders hold %d",
				step, s.Stock, s.PerUserLimit, s.Remaining, stock, limit, live)
		}
		for id, it := range keys {
			a, err := purchase(ctx, hc, p.base, sale.ID, it)
			if err != nil || a.status != http.StatusCreated || a.order.ID != id {
				t.Errorf("after %s and a crash: replay of key %s/%s answered %d %s %v; want 201 with order %s",
					step, it.user, it.key, a.status, a.body, err, id)
			}
		}
		list, err := admin().ArchivedSales(ctx)
		if err != nil {
			t.Fatalf("after %s: %v", step, err)
		}
		if got := len(list) == 1 && list[0].ID == other.ID; got != archived {
			t.Errorf("after %s and a crash: archived sales %+v; acknowledged archived: %v", step, list, archived)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	crash := func(step string) {
		t.Helper()
		if idle {
			time.Sleep(3 * time.Second) // the store refreshes its image once idle
		}
		p.stop(t, syscall.SIGKILL, 15*time.Second)
		p = startProc(t, dataDir, token, extra...)
		check(step)
	}

	a1 := buy("alice", "a1", 3)
	crash("a purchase")

	if _, err := admin().AsUser("alice").CancelOrder(ctx, a1); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	status[a1] = "cancelled"
	crash("a cancel")

	b1 := buy("bob", "b1", 2)
	if _, err := admin().PayOrder(ctx, b1); err != nil {
		t.Fatalf("pay: %v", err)
	}
	status[b1] = "paid"
	crash("an operator's payment")

	c1 := buy("carol", "c1", 1)
	pay, err := admin().SendPaymentEvent(ctx, secret, api.PaymentEvent{ID: new("evt_c1"), Type: new("payment.succeeded"), OrderID: &c1,
		AmountCents: new(int64(100)), Currency: new("EUR"), Created: new(time.Now().Unix())})
	if err != nil || pay.Status != "paid" {
		t.Fatalf("webhook payment: %+v %v", pay, err)
	}
	status[c1] = "paid"
	crash("a webhook's payment")

	if _, err := admin().UpdateSale(ctx, sale.ID, api.SalePatch{HoldSeconds: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	d1 := buy("dave", "d1", 2)
	waitUntil(t, "the expiry of dave's hold", 30*time.Second, func() bool {
		o, err := admin().Order(ctx, d1)
		return err == nil && o.Status == "expired"
	})
	status[d1] = "expired"
	crash("an expiry pass")

	// Down to the units bob and carol hold, and the limit below bob's.
	if _, err := admin().UpdateSale(ctx, sale.ID, api.SalePatch{Stock: new(int64(3)), PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	stock, limit = 3, 1
	crash("a PATCH of the stock and the limit down")
	if a, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "erin", key: "e1", qty: 1}); err != nil || a.status != http.StatusConflict {
		t.Errorf("a purchase of a sold-out sale after the crash: %d %s %v", a.status, a.body, err)
	}

	if _, err := admin().UpdateSale(ctx, other.ID, api.SalePatch{EndsAt: new(api.EndsAt(time.Now().UTC().Format(time.RFC3339Nano)))}); err != nil {
		t.Fatalf("end the other sale: %v", err)
	}
	if _, err := admin().ArchiveSale(ctx, other.ID); err != nil {
		t.Fatalf("archive: %v", err)
	}
	archived = true
	crash("an archive")

	// The sale ended (dormant at the next start), then reopened with
	// more stock and the limit up: the wake loads it whole.
	if _, err := admin().UpdateSale(ctx, sale.ID, api.SalePatch{EndsAt: new(api.EndsAt(time.Now().UTC().Format(time.RFC3339Nano)))}); err != nil {
		t.Fatalf("end the sale: %v", err)
	}
	crash("the end of the sale")
	if _, err := admin().UpdateSale(ctx, sale.ID, api.SalePatch{EndsAt: new(api.EndsAt("")), Stock: new(int64(6)), PerUserLimit: new(int64(2)), HoldSeconds: new(int64(3600))}); err != nil {
		t.Fatalf("reopen the sale: %v", err)
	}
	stock, limit = 6, 2
	crash("a reopening")
	f1 := buy("frank", "f1", 2)
	if a, err := purchase(ctx, hc, p.base, sale.ID, intent{user: "bob", key: "b2", qty: 1}); err != nil || a.status != http.StatusConflict {
		t.Errorf("bob holds 2 under the limit 2, yet bought again: %d %s %v", a.status, a.body, err)
	}
	crash("a purchase after the reopening")
	if _, err := admin().AsUser("frank").CancelOrder(ctx, f1); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	status[f1] = "cancelled"
	crash("a cancel after the reopening")

	// A clean stop (the seal, the image) and a crash after the start it
	// vouched for.
	p.stop(t, syscall.SIGTERM, 15*time.Second)
	p = startProc(t, dataDir, token, extra...)
	check("a clean stop")
	crash("a start after a clean stop")
}
