package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// TestReloadCluster: SIGHUP on a cluster node applies the settings that
// live in Redis-backed pieces there: the buyer rate limit, shared by the
// nodes through Redis, and the bound of the waiting rooms' Redis queues;
// the admin token changes as in embedded mode, and a cluster setting that
// needs a restart is logged as ignored.
func TestReloadCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	write := func(body string) { replaceConfig(t, cfg, body) }
	const tokenA, tokenB = "reload-cluster-admin-token-A", "reload-cluster-admin-token-B"
	base := "insecure-user-header: true\nrate-limit-sale: 0\n"
	write(base + "admin-token: " + tokenA + "\nrate-limit-buyer: 0\n")
	p := startConfigured(t, append([]string{"--config", cfg}, clusterArgs(t)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := client.New(p.base, tokenA)
	start := api.FormatTime(time.Now().Add(-time.Minute))
	room, err := admin.CreateSale(ctx, api.NewSale{Name: new("queued"), Stock: new(int64(100)), StartsAt: &start,
		WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(int64(1000)), Policy: new("fifo"), TicketSeconds: new(int64(60))}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := admin.CreateSale(ctx, api.NewSale{Name: new("plain"), Stock: new(int64(100)), PerUserLimit: new(int64(10))})
	if err != nil {
		t.Fatal(err)
	}
	// Before the reload: no buyer limit.
	for i := range 3 {
		if code := buy(t, p.base, plain.ID, "early", fmt.Sprint(i)); code != http.StatusCreated {
			t.Fatalf("purchase %d before the reload: %d, want 201", i, code)
		}
	}

	write(base + "admin-token: " + tokenB + "\nrate-limit-buyer: 1\nrate-limit-buyer-burst: 1\n" +
		"waiting-room-max-entries: 2\ncluster-buckets: 4\n")
	p.hup(t)
	p.waitLog(t, "config reloaded", 1)
	if code, body := get(t, p.base+"/v1/sales/"+plain.ID+"/orders", tokenA); code != http.StatusUnauthorized {
		t.Errorf("the old admin token after the reload: %d %s, want 401", code, body)
	}
	if code, body := get(t, p.base+"/v1/sales/"+plain.ID+"/orders", tokenB); code != http.StatusOK {
		t.Errorf("the new admin token after the reload: %d %s, want 200", code, body)
	}
	if line := p.logLine(t, "needs a restart"); !strings.Contains(line, "cluster-buckets") {
		t.Errorf("the restart-only change is logged as %q, want key cluster-buckets", line)
	}
	// The buyer limit, 1 a second with a burst of 1: a buyer's second
	// purchase at once is refused.
	if code := buy(t, p.base, plain.ID, "late", "1"); code != http.StatusCreated {
		t.Errorf("a buyer's first purchase after the reload: %d, want 201", code)
	}
	if code := buy(t, p.base, plain.ID, "late", "2"); code != http.StatusTooManyRequests {
		t.Errorf("the same buyer's second purchase at once: %d, want 429", code)
	}
	// The Redis queue now takes two buyers.
	for i, want := range []int{http.StatusCreated, http.StatusCreated, http.StatusConflict} {
		req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/sales/"+room.ID+"/queue", nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("q%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("join %d of the queue after the reload: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

// buy makes one purchase by user with an idempotency key and returns the
// status.
func buy(t *testing.T, base, saleID, user, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+saleID+"/purchases", strings.NewReader(`{"quantity":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", user)
	req.Header.Set("Idempotency-Key", user+"-"+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
