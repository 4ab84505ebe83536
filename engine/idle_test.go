package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// An idle sale holds no goroutine: a sale's owner starts with the first
// purchase that queues and exits once its inbox is empty, so thousands of
// ended or quiet sales cost no goroutines (issue 9, item 12).
func TestIdleSalesHoldNoGoroutine(t *testing.T) {
	for _, inFlight := range []int{1, 4} {
		t.Run(fmt.Sprintf("inflight=%d", inFlight), func(t *testing.T) {
			cfg := testConfig(fixedClock())
			cfg.InFlight = inFlight
			cfg.PurchaseTimeout = 5 * time.Minute // every purchase must be reserved, however loaded the machine
			e := openEngine(t, openStore(t, t.TempDir()), cfg)
			baseline := runtime.NumGoroutine()
			const sales, buyers = 200, 8
			for i := range sales {
				mustCreate(t, e, input(fmt.Sprintf("s%d", i), buyers*2, 1))
			}
			spike := func(round int) {
				var wg sync.WaitGroup
				for i := range sales {
					for b := range buyers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							p := surge.Purchase{UserID: fmt.Sprintf("r%d-u%d", round, b), Quantity: 1}
							out, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: fmt.Sprintf("s%d", i), Purchase: p})
							if err != nil || out.Code != surge.CodeReserved {
								t.Errorf("sale %d, %+v: (%+v, %v), want reserved", i, p, out, err)
							}
						}()
					}
				}
				wg.Wait()
			}
			spike(0)
			waitFor(t, "goroutines back to the baseline after a spike", func() bool { return runtime.NumGoroutine() <= baseline })
			// The owners start again on demand: idle sales still sell.
			spike(1)
			waitFor(t, "goroutines back to the baseline after a second spike", func() bool { return runtime.NumGoroutine() <= baseline })
			for i := range sales {
				if rem := remaining(t, e, fmt.Sprintf("s%d", i)); rem != 0 {
					t.Fatalf("sale %d: %d left, want 0", i, rem)
				}
			}
		})
	}
}

// An owner going idle while a purchase arrives must not strand it: the
// purchase either finds the owner still running or starts a new one.
// Pairs of purchases race with the owner's exit many times over; a lost
// wakeup would leave one waiting until PurchaseTimeout (ErrTimeout).
func TestOwnerWakeupNeverLost(t *testing.T) {
	const rounds = 2000
	cfg := testConfig(fixedClock())
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 1_000_000, 1))
	ctx := context.Background()
	for r := range rounds {
		a := goPurchase(ctx, e, "s", surge.Purchase{UserID: fmt.Sprintf("a%d", r), Quantity: 1})
		b := goPurchase(ctx, e, "s", surge.Purchase{UserID: fmt.Sprintf("b%d", r), Quantity: 1})
		for _, ch := range []<-chan answer{a, b} {
			if res := <-ch; res.err != nil || res.out.Code != surge.CodeReserved {
				t.Fatalf("round %d: (%+v, %v), want reserved", r, res.out, res.err)
			}
		}
	}
}
