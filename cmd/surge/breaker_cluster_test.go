package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGRPCDeadlineDoesNotOpenBreaker: a buyer's gRPC-Web GetOrder calls
// whose own timeout (grpc-timeout, which connect-go puts on the request's
// context) runs out while the node reads PostgreSQL are the buyer's
// failures, not PostgreSQL's. On the real binary in cluster mode, with
// PostgreSQL up, they must not open the PostgreSQL breaker: while it is
// open every purchase of the node answers 503 and /readyz fails, so any
// buyer could take a node out of service with a few impatient reads.
func TestGRPCDeadlineDoesNotOpenBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	const token = "grpc-deadline-admin-token"
	replaceConfig(t, cfg, "insecure-user-header: true\nadmin-token: "+token+"\nrate-limit-buyer: 0\n")
	p := startConfigured(t, append([]string{"--config", cfg}, clusterArgs(t)...)...)
	saleID := createSale(t, p.base, token, 100, 1)
	if code := buy(t, p.base, saleID, "first", "1"); code != http.StatusCreated {
		t.Fatalf("first purchase: %d, want 201", code)
	}
	const opened = "dependency=postgres from=closed to=open"
	// GetOrder{id: "no-such-order"} in protobuf, as one gRPC-Web frame.
	msg := append([]byte{0x0a, byte(len("no-such-order"))}, "no-such-order"...)
	frame := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	var sent, tripped atomic.Int64
	stop := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second}
			for i := 0; time.Now().Before(stop) && tripped.Load() == 0; i++ {
				// 100 µs to 1 ms: some run out before the call, most during it.
				timeout := fmt.Sprintf("%du", 100*(1+(i+w)%10))
				req, _ := http.NewRequest(http.MethodPost, p.base+"/surge.v1.SaleService/GetOrder", bytes.NewReader(frame))
				req.Header.Set("Content-Type", "application/grpc-web+proto")
				req.Header.Set("X-User-ID", "impatient")
				req.Header.Set("Grpc-Timeout", timeout)
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("GetOrder: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
				if i%10 == 9 && p.logCount(opened) > 0 {
					tripped.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if p.logCount(opened) > 0 {
		code := buy(t, p.base, saleID, "after", "1")
		t.Fatalf("one buyer's %d GetOrder calls with grpc-timeout of 100 µs to 1 ms opened the PostgreSQL breaker, PostgreSQL up (log: %q); a purchase right after: %d",
			sent.Load(), p.logLine(t, opened), code)
	}
	t.Logf("%d impatient GetOrder calls; the breaker stayed closed", sent.Load())
	if code := buy(t, p.base, saleID, "after", "1"); code != http.StatusCreated {
		t.Errorf("purchase after the impatient reads: %d, want 201", code)
	}
}
