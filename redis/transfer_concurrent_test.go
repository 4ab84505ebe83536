package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestTransfersAcrossInstallsCountedOnce: nodes move units between two
// buckets without pause while installs of new epochs swap the buckets in
// one after the other, each completing the transfers left with a donor
// (Install), and the leader's repair runs beside them; a transfer may so
// be completed by its donor, an install and the repair at once. Once all
// of it has stopped and a last repair has run, the buckets offer exactly
// the stock: a transfer applied twice would offer more (an oversell in
// Redis), one dropped fewer.
func TestTransfersAcrossInstallsCountedOnce(t *testing.T) {
	ctx := context.Background()
	_, st, l, _ := twoBuckets(t, 100)
	sale := surge.Sale{ID: "s1", Stock: 100, PerUserLimit: 100, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rem := []int64{50, 50}
				to := (w + i) % 2
				rem[to] = 0
				if _, err := st.Rebalance(ctx, l, to, 1, rem); err != nil {
					t.Errorf("rebalance: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := st.RepairTransfers(ctx, l, time.Now().Add(time.Minute)); err != nil {
				t.Errorf("repair: %v", err)
				return
			}
		}
	}()
	for epoch := int64(2); epoch <= 60; epoch++ {
		if ok, err := st.Install(ctx, surge.LiveState{Sale: sale, Buckets: 2, Epoch: epoch}, false, nil); err != nil || !ok {
			t.Fatalf("install epoch %d: %v %v", epoch, ok, err)
		}
	}
	close(stop)
	wg.Wait()
	if _, err := st.RepairTransfers(ctx, l, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rem, _, err := st.Totals(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if rem != 100 {
		t.Errorf("once the transfers, installs and repairs have ended, the buckets offer %d units, want the stock, 100", rem)
	}
}
