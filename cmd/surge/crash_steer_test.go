package main

import (
	"context"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestCrashKeepsOperatorsSteering SIGKILLs the real binary after each of
// an operator's changes of a live sale the other crash tests make rarely
// or never (a restock of a sold-out sale, a pause, a resume, a cut of the
// stock, an end) and the buyer's cancels between them, and checks after
// each restart that the sale is as it was answered: its stock, its pause,
// its end, the units its orders leave, and that a key which bought before
// still replays its order rather than buying the units that came back.
func TestCrashKeepsOperatorsSteering(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "steer-crash-token"
	p := startProc(t, dataDir, token)
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}
	admin := func() *client.Client { return client.New(p.base, token) }
	crash := func() {
		t.Helper()
		p.stop(t, syscall.SIGKILL, 15*time.Second)
		p = startProc(t, dataDir, token)
	}
	sale, err := admin().CreateSale(ctx, api.NewSale{Name: new("steered"), Stock: new(int64(4)), PerUserLimit: new(int64(4)),
		HoldSeconds: new(int64(3600))})
	if err != nil {
		t.Fatal(err)
	}
	buy := func(step string, it intent, want int, code string) answer {
		t.Helper()
		a, err := purchase(ctx, hc, p.base, sale.ID, it)
		if err != nil || a.status != want || a.code != code {
			t.Fatalf("%s: purchase %s/%s of %d answered %d %s (%v); want %d %s", step, it.user, it.key, it.qty, a.status, a.body, err, want, code)
		}
		return a
	}
	want := func(step string, stock, remaining int64, status string) {
		t.Helper()
		s, err := admin().Sale(ctx, sale.ID)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if s.Stock != stock || s.Remaining != remaining || s.Status != status {
			t.Fatalf("%s: stock %d remaining %d status %s; answered stock %d remaining %d status %s",
				step, s.Stock, s.Remaining, s.Status, stock, remaining, status)
		}
	}
	patch := func(step string, p api.SalePatch) {
		t.Helper()
		if _, err := admin().UpdateSale(ctx, sale.ID, p); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	alice := intent{user: "alice", key: "a1", qty: 4}
	first := buy("sell out", alice, http.StatusCreated, "")
	patch("restock", api.SalePatch{Stock: new(int64(6))})
	patch("pause", api.SalePatch{Paused: new(true)})
	crash()
	want("a restock and a pause, then a crash", 6, 2, "paused")
	buy("a purchase of a paused sale", intent{user: "bob", key: "b1", qty: 1}, http.StatusConflict, "paused")
	if a := buy("a replay in a paused sale", alice, http.StatusCreated, ""); a.order.ID != first.order.ID || !a.replay {
		t.Fatalf("the replay of alice's key answered order %s (replay %v); want %s", a.order.ID, a.replay, first.order.ID)
	}

	if _, err := admin().AsUser("alice").CancelOrder(ctx, first.order.ID); err != nil {
		t.Fatalf("cancel in a paused sale: %v", err)
	}
	crash()
	want("a cancel in a paused sale, then a crash", 6, 6, "paused")

	patch("resume", api.SalePatch{Paused: new(false)})
	patch("cut the stock", api.SalePatch{Stock: new(int64(1)), PerUserLimit: new(int64(1))})
	crash()
	want("a resume and a cut, then a crash", 1, 1, "live")
	// The key that bought the four units, since cancelled, replays that
	// order: it never buys the unit left.
	if a := buy("alice's key after her cancel", alice, http.StatusCreated, ""); a.order.ID != first.order.ID || !a.replay {
		t.Fatalf("alice's key after her cancel answered order %s (replay %v); want a replay of %s", a.order.ID, a.replay, first.order.ID)
	}
	bob := intent{user: "bob", key: "b2", qty: 1}
	second := buy("the unit left", bob, http.StatusCreated, "")
	buy("past the cut stock", intent{user: "carol", key: "c1", qty: 1}, http.StatusConflict, "sold_out")

	patch("end", api.SalePatch{EndsAt: new(api.EndsAt("now"))})
	crash()
	want("an end, then a crash", 1, 0, "ended")
	buy("a purchase of an ended sale", intent{user: "carol", key: "c2", qty: 1}, http.StatusConflict, "ended")
	if _, err := admin().AsUser("bob").CancelOrder(ctx, second.order.ID); err != nil {
		t.Fatalf("cancel of a hold in an ended sale: %v", err)
	}
	crash() // ended without a reserved order: loaded dormant
	want("a cancel in an ended sale, then a crash", 1, 1, "ended")
	for _, it := range []struct {
		intent
		order string
	}{{alice, first.order.ID}, {bob, second.order.ID}} {
		if a := buy("a replay in a dormant sale", it.intent, http.StatusCreated, ""); a.order.ID != it.order || !a.replay {
			t.Errorf("%s's key in the dormant sale answered order %s (replay %v); want a replay of %s", it.user, a.order.ID, a.replay, it.order)
		}
	}
	orders := exportOrders(t, p.base, token, sale.ID)
	if len(orders) != 2 || orders[first.order.ID].Status != "cancelled" || orders[second.order.ID].Status != "cancelled" {
		t.Errorf("orders after the crashes: %+v; want alice's and bob's, both cancelled", orders)
	}
}

// TestCrashKeepsOneSaleOfAnID creates one sale id from many operators at
// once, and again once the sale is called off (archived before its start),
// each time before and after a SIGKILL: one creation alone is answered
// 201, every other 409 sale_exists, and the sale is the one answered.
func TestCrashKeepsOneSaleOfAnID(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "duplicate-id-crash-token"
	p := startProc(t, dataDir, token)
	ctx := context.Background()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	createAll := func(step string) (won int64) {
		t.Helper()
		const n = 12
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []int64
		)
		for i := range n {
			wg.Go(func() {
				stock := int64(10 + i)
				_, err := client.New(p.base, token).CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("drop"), Stock: &stock,
					StartsAt: &later})
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, stock)
					mu.Unlock()
				case !surge.HasCode(err, surge.CodeSaleExists):
					t.Errorf("%s: a creation of the taken id answered %v; want 409 sale_exists", step, err)
				}
			})
		}
		wg.Wait()
		if len(wins) > 1 || len(wins) == 1 && step != "first" {
			t.Fatalf("%s: %d creations of one id answered 201 (stocks %v)", step, len(wins), wins)
		}
		if len(wins) == 1 {
			return wins[0]
		}
		return 0
	}
	stock := createAll("first")
	if stock == 0 {
		t.Fatal("no creation of a new id was answered 201")
	}
	p.stop(t, syscall.SIGKILL, 15*time.Second)
	p = startProc(t, dataDir, token)
	admin := client.New(p.base, token)
	if s, err := admin.Sale(ctx, "drop"); err != nil || s.Stock != stock {
		t.Fatalf("after a crash the sale reads %+v (%v); its creation answered stock %d", s, err, stock)
	}
	createAll("again, live")
	if _, err := admin.ArchiveSale(ctx, "drop"); err != nil {
		t.Fatalf("call off the sale: %v", err)
	}
	createAll("again, archived")
	p.stop(t, syscall.SIGKILL, 15*time.Second)
	p = startProc(t, dataDir, token)
	createAll("again, archived, after a crash")
	admin = client.New(p.base, token)
	if s, err := admin.Sale(ctx, "drop"); err != nil || s.Stock != stock || !s.Archived {
		t.Fatalf("the called-off sale reads %+v (%v); want stock %d, archived", s, err, stock)
	}
	if live, err := admin.Sales(ctx); err != nil || len(live) != 0 {
		t.Fatalf("sales in service after the creations of an archived id: %+v (%v); want none", live, err)
	}
}
