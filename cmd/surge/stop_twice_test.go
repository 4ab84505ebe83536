package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalStopsAtOnce: a second SIGINT or SIGTERM during a stop's
// drain ends the process at once, as an operator pressing Ctrl-C twice
// expects of a Go server, and loses no order it confirmed: every 201 was
// committed before it was sent. The signals stayed caught after the first,
// so the second did nothing and the drain (here a 60 s --drain-delay) ran
// its course.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token = "second-signal-admin-token"
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dataDir := t.TempDir()
			// No per-buyer limit: the buyers buy as fast as the store confirms.
			p := startProc(t, dataDir, token, "--drain-delay", "60s", "--rate-limit-buyer", "0")
			saleID := createSale(t, p.base, token, 1_000_000, 1_000_000)
			hc := &http.Client{Timeout: 5 * time.Second}
			var (
				mu        sync.Mutex
				confirmed []string // order ids answered 201
				wg        sync.WaitGroup
			)
			// Buyers until the process is gone: the forced stop lands
			// among their purchases.
			for w := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						it := intent{user: fmt.Sprintf("buyer-%d", w), key: fmt.Sprintf("k-%d-%d", w, i), qty: 1}
						a, err := purchase(context.Background(), hc, p.base, saleID, it)
						if err != nil {
							select {
							case <-p.exited:
								return
							default:
								continue
							}
						}
						if a.status == http.StatusCreated {
							mu.Lock()
							confirmed = append(confirmed, a.order.ID)
							mu.Unlock()
						}
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// The drain serves purchases as before; the second signal
			// comes in the middle of it.
			time.Sleep(500 * time.Millisecond)
			select {
			case <-p.exited:
				t.Fatalf("surge exited on the first %v, before its 60 s drain delay", sig)
			default:
			}
			p.stop(t, sig, 5*time.Second)
			wg.Wait()
			if len(confirmed) == 0 {
				t.Fatal("no purchase was confirmed")
			}

			q := startProc(t, dataDir, token)
			orders := exportOrders(t, q.base, token, saleID)
			lost := 0
			for _, id := range confirmed {
				if _, ok := orders[id]; !ok {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%d of %d confirmed orders are missing after the forced stop", lost, len(confirmed))
			}
			t.Logf("%d confirmed orders, all found after the forced stop", len(confirmed))
			q.stop(t, syscall.SIGTERM, 30*time.Second)
		})
	}
}
