package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestGivenUpAdminWaitsLeaveNoGoroutines: a PATCH whose own write the disk
// stalls holds the sale's locks for as long as the stall lasts; the
// changes sent meanwhile give up within the purchase timeout (503), as
// they must. Each one that gave up left a goroutine parked on the lock
// behind it, for as long as the stall lasted: an operator's script
// retrying its PATCH (or the CLI retrying a creation) during a long stall
// grew the process by a goroutine per request, without bound. The waits
// that gave up now leave at most one goroutine per lock.
func TestGivenUpAdminWaitsLeaveNoGoroutines(t *testing.T) {
	commithook.Install() // before the store opens its connections
	cfg := testConfig(fixedClock())
	cfg.PurchaseTimeout = time.Second // the first PATCH must reach its commit within it, on a loaded machine
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 10, 1))
	ctx := context.Background()

	// The first PATCH's write stalls, as a disk that stops answering.
	stalled, release := commithook.StallNext(t)
	first := make(chan error, 1)
	go func() {
		_, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true)})
		first <- err
	}()
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		commithook.OnNext(nil)
		t.Fatal("the first PATCH's commit never began")
	}
	if err := <-first; !surge.HasCode(err, surge.CodeUnavailable) {
		t.Fatalf("the PATCH whose write stalled: %v, want 503 unavailable", err)
	}

	before := runtime.NumGoroutine()
	const waves, perWave = 2, 200
	for w := range waves {
		var wg sync.WaitGroup
		for i := range perWave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("name %d-%d", w, i)
				if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Name: &name}); !surge.HasCode(err, surge.CodeUnavailable) {
					t.Errorf("a PATCH while the sale's write stalls: %v, want 503 unavailable", err)
				}
			}()
		}
		wg.Wait()
	}
	// Every PATCH above has been answered: what is left running is what
	// they left behind.
	var grew int
	deadline := time.Now().Add(5 * time.Second)
	for {
		grew = runtime.NumGoroutine() - before
		if grew <= 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grew > 8 {
		t.Errorf("%d PATCHes that gave up waiting for the sale's lock left %d goroutines behind while the write stalls; want a few at most",
			waves*perWave, grew)
	}

	// The disk goes on: the first PATCH lands, and the sale takes changes again.
	release()
	waitFor(t, "the stalled PATCH to land", func() bool { s, _ := e.Sale("s"); return s.Paused })
	name := "after"
	var err error
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		var st SaleState
		if st, err = e.UpdateSale(ctx, "s", surge.SalePatch{Name: &name}); err == nil && st.Name == name {
			break
		}
	}
	if err != nil {
		t.Fatalf("a PATCH once the disk went on: %v", err)
	}
}
