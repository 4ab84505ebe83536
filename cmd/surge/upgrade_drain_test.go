//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeDuringLongExportKeepsServing: an order export to a slow
// reader (a warehouse across a WAN) is in flight when an embedded server
// is upgraded (SIGUSR2). The old process may wait for it for
// --shutdown-timeout, then closes the store; the new process waits for the
// data directory for --shutdown-timeout + 30 s (docs/operations.md). The
// old one waited for the export twice, once in the handover and once more
// in the shutdown after it, so the new one gave up first: it exited 1, the
// old one exited 0, and nothing served. The new process must take over
// and serve, and every 201 must be in its export.
func TestUpgradeDuringLongExportKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test builds and runs the binary")
	}
	subreaper(t)
	const (
		orders  = 40000 // ~400 bytes each in the export: 16 MB, far more than the sockets buffer
		workers = 16
		// --shutdown-timeout: drained twice (66 s), it passes the new
		// process's wait (63 s) by seconds; at the default 30 s they race.
		timeout = 33 * time.Second
	)
	dataDir, token := t.TempDir(), "upgrade-export-admin-token"
	pidFile := filepath.Join(t.TempDir(), "surge.pid")
	p := startProc(t, dataDir, token, "--pid-file", pidFile, "--shutdown-timeout", timeout.String(), "--rate-limit-buyer", "0")
	saleID := createSale(t, p.base, token, orders+100, 1)

	// Long user ids and keys make each exported line long.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 2 * time.Minute}
	buy := func(i int) (string, error) {
		req, err := http.NewRequest(http.MethodPost, p.base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(`{"quantity":1}`))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-ID", fmt.Sprintf("u%063d", i))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("k%0127d", i))
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("purchase %d: %d %s", i, resp.StatusCode, b)
		}
		var id struct {
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		}
		if err := json.Unmarshal(b, &id); err != nil || id.Order.ID == "" {
			return "", fmt.Errorf("purchase %d: undecodable 201 %q: %v", i, b, err)
		}
		return id.Order.ID, nil
	}
	var (
		mu      sync.Mutex
		created = map[string]bool{}
		next    atomic.Int64
		failed  atomic.Pointer[error]
	)
	fire := func(upTo int64) {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > upTo || failed.Load() != nil {
						return
					}
					id, err := buy(int(i))
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					mu.Lock()
					created[id] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			t.Fatal(*err)
		}
	}
	began := time.Now()
	fire(orders)

	// The export, read at at most 160 KB/s from a small receive buffer:
	// fast enough for its write deadline (30 s for every 1024 orders, and
	// a full send buffer is writable again only once a third of it is
	// read), slow enough to last far longer than the handover.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/sales/" + saleID + "/orders HTTP/1.1\r\nHost: surge\r\nAuthorization: Bearer " + token + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	var (
		read     atomic.Int64
		first    = make(chan []byte, 1)
		exportAt atomic.Pointer[time.Time] // when the export ended
	)
	go func() {
		buf := make([]byte, 8192)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			n, err := conn.Read(buf)
			if read.Add(int64(n)) == int64(n) && n > 0 {
				first <- bytes.Clone(buf[:n])
			}
			if err != nil {
				now := time.Now()
				exportAt.Store(&now)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case b := <-first:
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
			t.Fatalf("the export answered %q", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the export sent nothing in 30s")
	}
	t.Logf("%d orders bought in %v; the export streams", orders, time.Since(began).Round(time.Millisecond))

	old := p.cmd.Process.Pid
	sent := time.Now()
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	newPID := 0
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if newPID = readPID(pidFile); newPID != 0 && newPID != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pid file still names the old process a minute after SIGUSR2\n%s", p.logTail())
		}
	}
	gen := adopt(t, newPID)

	// A purchase sent now waits in the socket's backlog until the new
	// process has the store open, then is answered by it.
	type result struct {
		id  string
		err error
	}
	bought := make(chan result, 1)
	go func() {
		id, err := buy(orders + 1)
		bought <- result{id, err}
	}()
	select {
	case r := <-bought:
		if r.err != nil {
			t.Fatalf("a purchase during the upgrade: %v\n%s", r.err, p.logTail())
		}
		created[r.id] = true
	case <-gen.exited:
		t.Fatalf("the new process exited (%v) %v after SIGUSR2 instead of taking over: nothing serves\n%s",
			gen.state(), time.Since(sent).Round(time.Second), p.logTail())
	case <-time.After(3 * time.Minute):
		t.Fatalf("no answer to a purchase 3 minutes after SIGUSR2\n%s", p.logTail())
	}
	t.Logf("the new process answered a purchase %v after SIGUSR2", time.Since(sent).Round(time.Millisecond))
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("the old process exited with %v", p.cmd.ProcessState)
		}
	case <-time.After(time.Minute):
		t.Fatal("the old process still runs after the new one served")
	}
	// The test held the old process's drain as it meant to: the export
	// was still streaming when the drain's timeout passed.
	if at := exportAt.Load(); at != nil && at.Before(sent.Add(timeout)) {
		t.Fatalf("the export ended %v after SIGUSR2, before the drain's timeout (%v): nothing held the handover", at.Sub(sent), timeout)
	}
	t.Logf("export: %d bytes read", read.Load())

	got := exportOrders(t, p.base, token, saleID)
	for id := range created {
		if _, ok := got[id]; !ok {
			t.Errorf("order %s was answered 201 but is not in the export after the upgrade", id)
		}
	}
	if len(got) != len(created) {
		t.Errorf("the export holds %d orders, %d were answered 201", len(got), len(created))
	}
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gen.exited:
		if st := gen.state(); st != nil && !st.Success() {
			t.Errorf("the new process exited with %v after SIGTERM", st)
		}
	case <-time.After(time.Minute):
		t.Fatal("the new process did not stop after SIGTERM")
	}
}
