package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestClusterStopWhileRedisStalls: a node stopped (SIGTERM) while Redis
// stalls, buyers still pressing "buy", took the Redis client's read
// timeout more than --shutdown-timeout to exit, twice over: stopping the
// readiness probes waited for the one in flight, and each shared rate
// limit's last report waited for its answer; go-redis does not heed a
// context's end, only its read timeout (1 s by default, here 5 s, as an
// operator may set it in --redis-url). A stop is bounded by
// --shutdown-timeout.
func TestClusterStopWhileRedisStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const shutdownTimeout = 2 * time.Second
	p, rp, saleID := behindRedisProxy(t, "?read_timeout=5s", 100,
		"--shutdown-timeout", shutdownTimeout.String(), "--rate-limit-sale", "100000")

	// Buyers on fresh connections keep the shared limits counting, before
	// the stall and during it, until the node stops listening.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	for w := range 8 {
		wg.Go(func() {
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/sales/"+saleID+"/purchases", nil)
				req.Header.Set("X-User-ID", fmt.Sprint("buyer-", w))
				resp, err := hc.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the node stopped listening
					continue
				}
				resp.Body.Close()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	rp.Pause()
	time.Sleep(300 * time.Millisecond) // reports and probes reach the stalled Redis
	stopsWithin(t, p, shutdownTimeout, "while Redis stalled")
}

// behindRedisProxy starts a cluster node whose Redis is behind a proxy
// (query ends --redis-url), with extra flags, makes a sale of a million
// units, limit a buyer, and buys one unit of it; it returns the node, the
// proxy and the sale.
func behindRedisProxy(t *testing.T, query string, limit int64, extra ...string) (*proc, *servicetest.Proxy, string) {
	t.Helper()
	rp := servicetest.RedisProxy(t)
	args := clusterArgs(t)
	args[slices.Index(args, "--redis-url")+1] = "redis://" + rp.Addr + "/0" + query
	const token = "redis-proxy-admin-token"
	p := startProc(t, t.TempDir(), token, append(args, extra...)...)
	saleID := createSale(t, p.base, token, 1_000_000, limit)
	if code := buy(t, p.base, saleID, "warm", "1"); code != http.StatusCreated {
		t.Fatalf("purchase before Redis fails: %d, want 201", code)
	}
	return p, rp, saleID
}
