package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestLimitHoldsUnderCancelBuyLoops runs buyers in cancel-then-buy loops,
// two purchases of each buyer at once and each cancel sent twice, while
// the operator moves the per-user limit up and down, pauses and resumes,
// and holds expire. No buyer may ever hold more than the largest limit
// the sale had, none more than the limit in force once it stops moving,
// and a reopen from the ledger image must find the same units left.
func TestLimitHoldsUnderCancelBuyLoops(t *testing.T) {
	const (
		users  = 12
		rounds = 25
		stock  = 40
		maxLim = 4
	)
	ctx := context.Background()
	dir := t.TempDir()
	clk := fixedClock()
	opts := sqlite.Options{NoExpiry: true, ImageMin: 1}
	st, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(clk)
	cfg.PurchaseTimeout = time.Minute
	e, err := Open(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := input("lim", stock, 2)
	in.HoldSeconds = ptr(int64(30))
	mustCreate(t, e, in)

	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
		done  = make(chan struct{})
		// reserved and cancels count what the loops did, for the log.
		reserved, cancels atomic.Int64
		codeMu            sync.Mutex
		codes             = map[string]int{}
	)
	fail := func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		wg.Go(func() {
			for r := range rounds {
				var twins sync.WaitGroup
				ids := make([]string, 2)
				for k := range 2 {
					twins.Go(func() {
						p := surge.Purchase{UserID: user, Quantity: int64(1 + (r+k)%2), IdempotencyKey: fmt.Sprintf("%d-%d", r, k)}
						out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "lim", Purchase: p})
						for try := 0; err == nil && out.Code == surge.CodePaused && try < 100; try++ {
							time.Sleep(time.Millisecond) // a pause ends soon: the buyer retries
							out, err = e.Purchase(ctx, PurchaseRequest{SaleID: "lim", Purchase: p})
						}
						codeMu.Lock()
						codes[string(out.Code)+"|"+string(surge.ErrorCode(err))]++
						codeMu.Unlock()
						switch {
						case err != nil && !surge.HasCode(err, surge.CodeInvalid): // above a limit lowered meanwhile
							fail(fmt.Errorf("purchase %+v: %w", p, err))
						case err == nil && out.Code == surge.CodeReserved:
							ids[k] = out.Order.ID
							reserved.Add(1)
						}
					})
				}
				twins.Wait()
				for _, id := range ids {
					if id == "" || r%3 == 2 {
						continue
					}
					var again sync.WaitGroup
					for range 2 {
						again.Go(func() {
							_, err := e.CancelFor(ctx, user, id)
							if err == nil {
								cancels.Add(1)
							}
							if err != nil && !surge.HasCode(err, surge.CodeNotCancellable) {
								fail(fmt.Errorf("cancel %s: %w", id, err))
							}
						})
					}
					again.Wait()
				}
			}
		})
	}
	var og sync.WaitGroup
	og.Go(func() {
		for r := 0; ; r++ {
			select {
			case <-done:
				return
			default:
			}
			limit := int64(1 + r%maxLim)
			p := surge.SalePatch{PerUserLimit: &limit}
			if r%8 == 1 {
				p.Paused = new(true)
			} else {
				p.Paused = new(false)
			}
			if _, err := e.UpdateSale(ctx, "lim", p); err != nil {
				fail(fmt.Errorf("limit to %d: %w", limit, err))
			}
			if r%5 == 0 {
				clk.Advance(31 * time.Second)
				e.ExpireNow()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	wg.Wait()
	close(done)
	og.Wait()
	t.Logf("%d reservations, %d cancels; answers %v", reserved.Load(), cancels.Load(), codes)
	for _, err := range errs {
		t.Error(err)
	}

	final := int64(2)
	if _, err := e.UpdateSale(ctx, "lim", surge.SalePatch{PerUserLimit: &final, Paused: new(false)}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, e *Engine, st surge.Store) map[string]int64 {
		t.Helper()
		held := map[string]int64{}
		keys := map[string]int{}
		var live int64
		for _, o := range ordersOf(t, st, "lim") {
			if o.Status.Live() {
				held[o.UserID] += o.Quantity
				live += o.Quantity
			}
			if keys[o.UserID+"/"+o.IdempotencyKey]++; keys[o.UserID+"/"+o.IdempotencyKey] > 1 {
				t.Errorf("%s: key %s/%s bought twice", when, o.UserID, o.IdempotencyKey)
			}
		}
		for u, n := range held {
			if n > maxLim {
				t.Errorf("%s: buyer %s holds %d units, above every limit the sale had (%d)", when, u, n, maxLim)
			}
		}
		if rem := remaining(t, e, "lim"); rem != stock-live {
			t.Errorf("%s: remaining %d; the orders hold %d of %d", when, rem, live, stock)
		}
		return held
	}
	check("after the loops", e, st)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(ctx, dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	e = openEngine(t, st, cfg)
	held := check("after a reopen", e, st)
	// With the limit at 2 from now on, and units enough, every buyer
	// tops up to 2 and no further.
	more := int64(stock + 2*users)
	if _, err := e.UpdateSale(ctx, "lim", surge.SalePatch{Stock: &more}); err != nil {
		t.Fatal(err)
	}
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		got := int64(0)
		for k := range 3 {
			out := mustPurchase(t, e, "lim", surge.Purchase{UserID: user, Quantity: 1, IdempotencyKey: fmt.Sprintf("after-%d", k)})
			if out.Code == surge.CodeReserved {
				got++
			}
		}
		if want := max(final-held[user], 0); got != want {
			t.Errorf("buyer %s held %d units, then bought %d more under the limit %d; want %d", user, held[user], got, final, want)
		}
	}
}
