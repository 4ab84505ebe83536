package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of size (mount(8)'s size=) at a new directory
// and returns it: a disk that really fills up (ENOSPC), where a write into
// space a file already holds still succeeds and only growth fails, unlike
// refuseWrites, which fails every write. It skips the test without root.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDiskKillKeepsConfirmed: an embedded node on a disk that fills up
// under a spike answers 503 once SQLite's commits meet ENOSPC, is then
// SIGKILLed, and starts again on the still full disk: every purchase it
// answered 201 is there (its key replays the same order), the stock left
// counts exactly those, and once the disk has room again it sells.
func TestFullDiskKillKeepsConfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	disk := smallDisk(t, "1m")
	data := filepath.Join(disk, "data")
	const token = "disk-full-admin-token"
	const stock = 100_000
	p := startProc(t, data, token)
	saleID := createSale(t, p.base, token, stock, 1)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}
	var acked []answer
	var its []intent
	refused := 0
	for i := 0; refused < 5; i++ {
		if ctx.Err() != nil {
			t.Fatalf("the disk never filled: %d purchases confirmed", len(acked))
		}
		it := intent{user: fmt.Sprintf("u%d", i), key: fmt.Sprintf("k%d", i), qty: 1}
		a, err := purchase(ctx, hc, p.base, saleID, it)
		if err != nil {
			t.Fatalf("purchase %d: %v", i, err)
		}
		switch a.status {
		case http.StatusCreated:
			acked = append(acked, a)
			its = append(its, it)
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("purchase %d on a filling disk: %d %s, want 201 or 503", i, a.status, a.body)
		}
	}
	t.Logf("%d purchases confirmed before the disk filled", len(acked))
	p.stop(t, syscall.SIGKILL, 5*time.Second)

	p = startProc(t, data, token)
	remaining := func() int64 {
		t.Helper()
		resp, err := hc.Get(p.base + "/v1/sales/" + saleID)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			Remaining int64 `json:"remaining"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.Remaining
	}
	if got, want := remaining(), int64(stock-len(acked)); got != want {
		t.Errorf("remaining after the restart on the full disk: %d, want %d (%d confirmed)", got, want, len(acked))
	}
	for i, it := range its {
		a, err := purchase(ctx, hc, p.base, saleID, it)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusCreated || !a.replay || a.order.ID != acked[i].order.ID {
			t.Fatalf("key %s, confirmed as order %s before the kill, answered %d (replay %v) %s after it", it.key, acked[i].order.ID, a.status, a.replay, a.body)
		}
	}

	if out, err := exec.Command("mount", "-o", "remount,size=8m", disk).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code := 0; code != http.StatusCreated; {
		if time.Now().After(deadline) {
			t.Fatalf("the disk has room again, yet a purchase still answers %d", code)
		}
		code = buyStatus(t, p.base, saleID, fmt.Sprintf("after-%d", time.Now().UnixNano()))
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t, syscall.SIGTERM, 15*time.Second)
}
