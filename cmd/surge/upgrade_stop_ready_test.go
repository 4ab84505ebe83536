//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMAsUpgradeIsReady: a SIGTERM to the old process of an upgrade
// (systemd's main pid until it exits: `systemctl stop` signals it) at the
// moment the new process reports ready. Either the stop or the handover
// came first, by chance: tableflip ended the new process with SIGKILL
// although it had written the pid file (left naming a dead process) and,
// in cluster mode, already served; or the handover won and the new
// process served on, the stop lost. The stop must stop the service: both
// processes exit 0, the new one too, the pid file goes, and every order
// confirmed before and during it is there at the next start.
func TestSIGTERMAsUpgradeIsReady(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	for _, mode := range []string{"embedded", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			var extra []string
			if mode == "cluster" {
				extra = clusterArgs(t)
			}
			dataDir, token := t.TempDir(), "upgrade-stop-ready-admin-token"
			pidFile := filepath.Join(t.TempDir(), "surge.pid")
			p := startProc(t, dataDir, token, append(extra, "--pid-file", pidFile)...) // --shutdown-timeout 10s
			saleID := createSale(t, p.base, token, 100000, 1000)

			// Buyers keep buying throughout; every 201 is kept.
			var (
				mu        sync.Mutex
				confirmed []string
			)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					hc := &http.Client{Timeout: 5 * time.Second}
					for i := 0; ctx.Err() == nil; i++ {
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(`{"quantity":1}`))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d-%d", w, i))
						req.Header.Set("Idempotency-Key", "k")
						resp, err := hc.Do(req)
						if err != nil {
							time.Sleep(10 * time.Millisecond)
							continue
						}
						var o struct {
							Order struct {
								ID string `json:"id"`
							} `json:"order"`
						}
						if resp.StatusCode == http.StatusCreated && json.NewDecoder(resp.Body).Decode(&o) == nil && o.Order.ID != "" {
							mu.Lock()
							confirmed = append(confirmed, o.Order.ID)
							mu.Unlock()
						}
						resp.Body.Close()
						time.Sleep(2 * time.Millisecond)
					}
				})
			}
			defer func() { cancel(); wg.Wait() }()
			time.Sleep(300 * time.Millisecond)

			old := p.cmd.Process.Pid
			if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			// The new process writes the pid file, then reports ready at once.
			next := 0
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
				if next = readPID(pidFile); next != 0 && next != old {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the pid file still names %d a minute after SIGUSR2", old)
				}
			}
			if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			gen := adopt(t, next)
			select {
			case <-p.exited:
				if !p.cmd.ProcessState.Success() {
					t.Errorf("the old process exited with %v after SIGTERM, want status 0", p.cmd.ProcessState)
				}
			case <-time.After(40 * time.Second):
				t.Fatalf("the old process still runs 40 s after SIGTERM\n%s", p.logTail())
			}
			select {
			case <-gen.exited:
				if st := gen.state(); st != nil && !st.Success() {
					t.Errorf("the new process ended with %v: want a clean stop, status 0\n%s", st, p.logTail())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the new process (pid %d) still runs 30 s after the old one, stopped with SIGTERM, exited: the stop was lost\n%s",
					next, p.logTail())
			}
			cancel()
			wg.Wait()
			if _, err := os.Stat(pidFile); err == nil {
				t.Errorf("the pid file outlived the stop, naming pid %d", readPID(pidFile))
			}

			q := startProc(t, dataDir, token, extra...)
			have := exportOrders(t, q.base, token, saleID)
			mu.Lock()
			defer mu.Unlock()
			for _, id := range confirmed {
				if _, ok := have[id]; !ok {
					t.Errorf("order %s, answered 201, is missing after the stop", id)
				}
			}
			t.Logf("%d orders confirmed, all there after the stop", len(confirmed))
		})
	}
}
