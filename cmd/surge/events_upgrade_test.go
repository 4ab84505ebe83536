package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestUpgradeEvents: order events across upgrades (SIGUSR2) with
// --nats-url, then a SIGTERM: every committed change has exactly one
// message, in seq order embedded (docs/events.md, Delivery guarantee).
func TestUpgradeEvents(t *testing.T) {
	for _, mode := range []string{"embedded", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			if testing.Short() {
				t.Skip("builds and runs the binary")
			}
			subreaper(t)
			nc, _, _ := servicetest.NATS(t)
			var extra []string
			if mode == "cluster" {
				extra = clusterArgs(t)
			}
			dataDir, token := t.TempDir(), "events-upgrade-token"
			pidFile := filepath.Join(t.TempDir(), "surge.pid")
			p := startProc(t, dataDir, token, append(extra, "--nats-url", servicetest.NATSURL(), "--pid-file", pidFile)...)
			cur := generation{pid: p.cmd.Process.Pid, exited: p.exited, state: func() *os.ProcessState { return p.cmd.ProcessState }}
			saleID := createSale(t, p.base, token, 100000, 1000)
			filter := saleSubjects(t, nc, saleID)

			stop := make(chan struct{})
			var buyers sync.WaitGroup
			hc := &http.Client{Timeout: 5 * time.Second}
			for w := range 8 {
				buyers.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/sales/"+saleID+"/purchases", nil)
						req.Header.Set("X-User-ID", fmt.Sprintf("u%d-%d", w, i%200))
						if res, err := hc.Do(req); err == nil {
							_, _ = io.Copy(io.Discard, res.Body)
							res.Body.Close()
						}
						time.Sleep(2 * time.Millisecond)
					}
				})
			}
			stopBuyers := sync.OnceFunc(func() { close(stop); buyers.Wait() })
			defer stopBuyers()
			time.Sleep(500 * time.Millisecond)
			for i := range 2 {
				if err := syscall.Kill(cur.pid, syscall.SIGUSR2); err != nil {
					t.Fatal(err)
				}
				next := 0
				waitUntil(t, "the new process", time.Minute, func() bool {
					next = readPID(pidFile)
					return next != 0 && next != cur.pid
				})
				select {
				case <-cur.exited:
				case <-time.After(time.Minute):
					t.Fatalf("upgrade %d: old process did not exit", i+1)
				}
				cur = adopt(t, next)
				time.Sleep(700 * time.Millisecond)
			}
			stopBuyers()
			settleSome(t, p.base, token, saleID, 40)
			orders := exportOrders(t, p.base, token, saleID)
			msgs := wantOneMessageEach(t, nc, filter, orders, mode == "embedded")
			t.Logf("%d orders, %d messages", len(orders), len(msgs))
			if err := syscall.Kill(cur.pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-cur.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("last process did not exit")
			}
			if t.Failed() {
				t.Logf("log:\n%s", p.logTail())
			}
		})
	}
}
