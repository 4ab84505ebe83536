package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestCrashDuringStop SIGKILLs the real binary in the middle of its
// clean stop, at a random moment after the SIGTERM, while buyers buy,
// cancel and their holds expire: the stop may be draining, writing the
// ledger image (--ledger-image-min 1), folding the WAL or sealing the
// database when it dies. Every order answered 201 must be there after the
// restart, every cancel answered 200 cancelled, every key replaying its
// order, and the units left must be the stock less what the orders hold.
func TestCrashDuringStop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	const (
		lives   = 5
		stock   = 4000
		limit   = 3
		users   = 400
		workers = 16
	)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	dataDir, token := t.TempDir(), "stop-crash-admin-token"
	flags := []string{"--ledger-image-min", "1"}
	p := startProc(t, dataDir, token, flags...)
	ctx := context.Background()
	sale, err := client.New(p.base, token).CreateSale(ctx, api.NewSale{Name: new("stop"), Stock: new(int64(stock)),
		PerUserLimit: new(int64(limit)), HoldSeconds: new(int64(2))})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		created   = map[string]api.Order{} // order id -> its 201
		keys      = map[string]string{}    // user/key -> order id
		cancelled = map[string]bool{}      // cancels answered 200
	)
	hc := &http.Client{Timeout: 5 * time.Second}
	for life := range lives {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wrng := rand.New(rand.NewPCG(seed+uint64(life), uint64(w)))
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					it := intent{user: fmt.Sprintf("u%d", wrng.IntN(users)), key: fmt.Sprintf("l%dw%dn%d", life, w, n), qty: 1}
					a, err := purchase(ctx, hc, p.base, sale.ID, it)
					if err != nil || a.status != http.StatusCreated {
						continue
					}
					mu.Lock()
					created[a.order.ID], keys[it.user+"/"+it.key] = a.order, a.order.ID
					mu.Unlock()
					if wrng.IntN(3) == 0 {
						c := client.New(p.base, "").AsUser(it.user)
						if _, err := c.CancelOrder(ctx, a.order.ID); err == nil {
							mu.Lock()
							cancelled[a.order.ID] = true
							mu.Unlock()
						}
					}
				}
			})
		}
		time.Sleep(time.Duration(600+rng.IntN(900)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// A clean stop takes some 10-50 ms here: most kills land in it.
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		p.stop(t, syscall.SIGKILL, 15*time.Second)
		close(stop)
		wg.Wait()
		p = startProc(t, dataDir, token, flags...)

		orders := exportOrders(t, p.base, token, sale.ID)
		var live int64
		held := map[string]int64{}
		for _, o := range orders {
			if o.Status == "reserved" || o.Status == "paid" {
				live += o.Quantity
				held[o.UserID] += o.Quantity
			}
		}
		for id, o := range created {
			got, ok := orders[id]
			switch {
			case !ok:
				t.Errorf("life %d: order %s answered 201 (%s/%s) is gone", life, id, o.UserID, o.IdempotencyKey)
			case cancelled[id] && got.Status != "cancelled":
				t.Errorf("life %d: order %s answered cancelled is %s", life, id, got.Status)
			}
		}
		for u, n := range held {
			if n > limit {
				t.Errorf("life %d: buyer %s holds %d units, over the limit %d", life, u, n, limit)
			}
		}
		s, err := client.New(p.base, token).Sale(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.Remaining != stock-live {
			t.Errorf("life %d: remaining %d; the orders hold %d of %d", life, s.Remaining, live, stock)
		}
		n := 0
		for k, id := range keys {
			if n++; n > 200 {
				break
			}
			user, key, _ := strings.Cut(k, "/")
			a, err := purchase(ctx, hc, p.base, sale.ID, intent{user: user, key: key, qty: 1})
			if err != nil || a.status != http.StatusCreated || a.order.ID != id {
				t.Errorf("life %d: replay of %s/%s answered %d %s (%v); want order %s", life, user, key, a.status, a.body, err, id)
			}
		}
		t.Logf("life %d: %d orders answered, %d cancels, %d live units", life, len(created), len(cancelled), live)
		if t.Failed() {
			t.FailNow()
		}
	}
}
