package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/sqlite"
)

// refuseWrites makes the disk refuse process pid's writes, or take them
// again: its soft file-size limit (RLIMIT_FSIZE) at 0 fails every write to
// a regular file with EFBIG (Go ignores SIGXFSZ), as a full or failing disk
// refuses them; "unlimited" lifts it. Real writes the kernel refuses,
// without the root a small filesystem to fill would need.
func refuseWrites(t *testing.T, pid int, refuse bool) {
	t.Helper()
	limit := "unlimited:"
	if refuse {
		limit = "0:"
	}
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize="+limit).CombinedOutput(); err != nil {
		t.Fatalf("prlimit --pid %d --fsize=%s: %v\n%s", pid, limit, err, out)
	}
}

// TestReadinessRecoversOnceDiskTakesWrites: an embedded node whose disk
// refuses writes says it is not ready (its purchases fail 503), and says it
// is ready again once the disk takes writes again, by itself: a load balancer or Kubernetes that follows
// /readyz sends it no purchase while it says 503, so readiness that waits
// for a purchase to commit would keep the node out of service for good.
func TestReadinessRecoversOnceDiskTakesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token = "disk-readiness-admin-token"
	p := startProc(t, t.TempDir(), token)
	saleID := createSale(t, p.base, token, 1000, 1)
	if code := buyStatus(t, p.base, saleID, "before"); code != http.StatusCreated {
		t.Fatalf("purchase with room on the disk: %d, want 201", code)
	}

	refuseWrites(t, p.cmd.Process.Pid, true)
	if code := buyStatus(t, p.base, saleID, "full"); code != http.StatusServiceUnavailable {
		t.Fatalf("purchase while the disk refuses writes: %d, want 503", code)
	}
	waitStatus(t, p.base, http.StatusServiceUnavailable, 5*time.Second)

	// The disk takes writes again. Nobody buys: whatever follows /readyz
	// withholds them.
	refuseWrites(t, p.cmd.Process.Pid, false)
	lifted := time.Now()
	deadline := lifted.Add(10 * time.Second)
	for readyz(p.base) != http.StatusOK {
		if time.Now().After(deadline) {
			resp, err := http.Get(p.base + "/readyz")
			body := ""
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
			}
			t.Fatalf("the disk has taken writes again for 10 s, yet /readyz still answers 503 (%s): a node behind a load balancer that follows /readyz never gets a purchase again, so it stays out of service for good", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz 200 again %v after the disk took writes again", time.Since(lifted).Round(time.Millisecond))
	if code := buyStatus(t, p.base, saleID, "after"); code != http.StatusCreated {
		t.Errorf("purchase once ready again: %d, want 201", code)
	}
}

// exportedUsers returns the buyers of a sale's orders, from the export.
func exportedUsers(t *testing.T, base, token, saleID string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	users := map[string]bool{}
	if err := client.New(base, token).Orders(ctx, saleID, func(o api.Order) error {
		users[o.UserID] = true
		return nil
	}); err != nil {
		t.Fatalf("export orders: %v", err)
	}
	return users
}

// TestFileRemovedWhileServingConfirmsNothing: an operator removes
// surge.db-wal or surge.db while the server runs. SQLite goes on writing
// into the file it has open, which no longer has a name: a purchase
// confirmed then lives in a deleted file, and a crash loses it. The store
// must confirm no purchase from then on (503, and /readyz says so). With
// the WAL removed after it was emptied, the database holds every 201 after
// a kill -9 and a restart; with surge.db removed, its orders went with it
// (the next start refuses: surge.hwm), and no purchase may join them.
func TestFileRemovedWhileServingConfirmsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	for _, tc := range []struct {
		name    string
		restart bool // after a kill -9 every 201 must be in the database
	}{
		{sqlite.FileName + "-wal", true},
		{sqlite.FileName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const token = "file-removed-admin-token"
			p := startProc(t, dir, token)
			saleID := createSale(t, p.base, token, 100, 1)
			if code := buyStatus(t, p.base, saleID, "before"); code != http.StatusCreated {
				t.Fatalf("purchase before the removal: %d, want 201", code)
			}
			waitWALEmptied(t, dir)
			if err := os.Remove(filepath.Join(dir, tc.name)); err != nil {
				t.Fatal(err)
			}
			var confirmed []string
			for _, u := range []string{"after1", "after2", "after3"} {
				if code := buyStatus(t, p.base, saleID, u); code == http.StatusCreated {
					confirmed = append(confirmed, u)
				}
			}
			if !tc.restart {
				if len(confirmed) > 0 {
					t.Errorf("after %s was removed while serving, purchases of %v were answered 201: their orders are in a deleted file, lost at the next crash or start", tc.name, confirmed)
				} else {
					waitStatus(t, p.base, http.StatusServiceUnavailable, 5*time.Second)
				}
				return
			}
			if len(confirmed) == 0 {
				waitStatus(t, p.base, http.StatusServiceUnavailable, 5*time.Second)
			}
			p.stop(t, syscall.SIGKILL, 10*time.Second)
			addr := freeAddr(t)
			q, err := launchCmd(t, serveCmd(surgeBinary(t), dir, token, addr), addr)
			if err != nil {
				t.Fatalf("after %s was removed while serving, purchases of %v were answered 201, and after a kill -9 "+
					"the server cannot start: the confirmed orders were written to a deleted file and are lost:\n%v", tc.name, confirmed, err)
			}
			users := exportedUsers(t, q.base, token, saleID)
			for _, u := range append([]string{"before"}, confirmed...) {
				if !users[u] {
					t.Errorf("the purchase of %s was answered 201 but its order is not in the database after a kill -9 and a restart", u)
				}
			}
		})
	}
}

// waitWALEmptied waits until the idle store has emptied its WAL into
// surge.db (its TRUNCATE checkpoint after 2 s idle): then removing the WAL
// loses nothing confirmed so far.
func waitWALEmptied(t *testing.T, dir string) {
	t.Helper()
	wal := filepath.Join(dir, sqlite.FileName+"-wal")
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(wal)
		if err == nil && fi.Size() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WAL was not emptied within 10 s of idleness: %v %v", fi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSaleChangeAfterFileRemovedConfirmsNothing: an operator's change of
// a sale (a PATCH, an archive) once surge.db or its WAL was removed while
// serving is refused as a purchase is, never answered 200: it went into a
// file no name reaches, and a crash or the next start lost it (the stock
// back as it was, the sale called off back in service).
func TestSaleChangeAfterFileRemovedConfirmsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	for _, tc := range []struct {
		name    string
		restart bool // after a kill -9 every 200 must be in the database
	}{
		{sqlite.FileName + "-wal", true},
		{sqlite.FileName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const token = "change-removed-admin-token"
			p := startProc(t, dir, token)
			ctx := context.Background()
			admin := client.New(p.base, token)
			live, err := admin.CreateSale(ctx, api.NewSale{Name: new("live"), Stock: new(int64(100))})
			if err != nil {
				t.Fatal(err)
			}
			later, err := admin.CreateSale(ctx, api.NewSale{Name: new("later"), Stock: new(int64(5)),
				StartsAt: new(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))})
			if err != nil {
				t.Fatal(err)
			}
			waitWALEmptied(t, dir)
			if err := os.Remove(filepath.Join(dir, tc.name)); err != nil {
				t.Fatal(err)
			}
			patched := adminStatus(t, p.base, token, http.MethodPatch, "/v1/sales/"+live.ID, `{"stock":50}`)
			archived := adminStatus(t, p.base, token, http.MethodPost, "/v1/sales/"+later.ID+"/archive", "")
			if !tc.restart {
				if patched == http.StatusOK {
					t.Errorf("after %s was removed while serving, a PATCH of the stock was answered 200: the change is in a deleted file, lost at the next crash or start", tc.name)
				}
				if archived == http.StatusOK {
					t.Errorf("after %s was removed while serving, an archive was answered 200: the archive is in a deleted file, lost at the next crash or start", tc.name)
				}
				return
			}
			p.stop(t, syscall.SIGKILL, 10*time.Second)
			q := startProc(t, dir, token)
			admin = client.New(q.base, token)
			if s, err := admin.Sale(ctx, live.ID); err != nil {
				t.Fatal(err)
			} else if patched == http.StatusOK && s.Stock != 50 {
				t.Errorf("a PATCH of the stock to 50 was answered 200 after %s was removed, but after a kill -9 and a restart the stock is %d", tc.name, s.Stock)
			}
			if s, err := admin.Sale(ctx, later.ID); err != nil {
				t.Fatal(err)
			} else if archived == http.StatusOK && !s.Archived {
				t.Errorf("an archive was answered 200 after %s was removed, but after a kill -9 and a restart the sale is in service again (%s)", tc.name, s.Status)
			}
		})
	}
}

// adminStatus sends the operator's request and returns its status.
func adminStatus(t *testing.T, base, token, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	return resp.StatusCode
}

// TestFailingDiskShowsInMetrics: while the embedded store cannot commit
// (its disk refuses writes), /metrics says so, not only /readyz and the log: a
// counter of the commits that failed, which an alert can watch.
// surge_purchases_total{outcome="unavailable"} does not: it counts every
// 503 unavailable (a closing engine too), and none at all once a load
// balancer that follows /readyz sends no purchase.
func TestFailingDiskShowsInMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token = "disk-metrics-admin-token"
	p := startProc(t, t.TempDir(), token)
	saleID := createSale(t, p.base, token, 1000, 1)
	refuseWrites(t, p.cmd.Process.Pid, true)
	if code := buyStatus(t, p.base, saleID, "full"); code != http.StatusServiceUnavailable {
		t.Fatalf("purchase while the disk refuses writes: %d, want 503", code)
	}
	code, body := get(t, p.base+"/metrics", token)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "surge_store_commit_failures_total "); ok {
			if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 1 {
				return
			}
			t.Fatalf("a commit failed on the refusing disk, yet /metrics says %q", line)
		}
	}
	t.Fatalf("the store's commits fail (the disk refuses writes, purchases answered 503), yet /metrics has no surge_store_commit_failures_total: " +
		"nothing a Prometheus alert can see says the store is failing")
}

// TestStoreFailuresRiseWithoutTraffic: alert SurgeStoreCommitsFailing
// fires when surge_store_commit_failures_total rises in every minute for 2
// minutes. It must do so for a node nobody sends purchases or readiness
// probes to (a quiet hour; no load balancer or Kubernetes asking /readyz):
// the node checks its store itself every second, and each check of a
// store whose last commit failed tries a commit, so the counter rises with
// no request at all. (A regression test: it held when written.)
func TestStoreFailuresRiseWithoutTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	const token = "disk-quiet-admin-token"
	p := startProc(t, t.TempDir(), token)
	saleID := createSale(t, p.base, token, 1000, 1)
	refuseWrites(t, p.cmd.Process.Pid, true)
	if code := buyStatus(t, p.base, saleID, "full"); code != http.StatusServiceUnavailable {
		t.Fatalf("purchase while the disk refuses writes: %d, want 503", code)
	}
	failures := func() float64 {
		t.Helper()
		code, body := get(t, p.base+"/metrics", token)
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "surge_store_commit_failures_total "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				return n
			}
		}
		t.Fatal("/metrics has no surge_store_commit_failures_total")
		return 0
	}
	before := failures()
	time.Sleep(4 * time.Second) // no purchase, no /readyz
	if after := failures(); after < before+2 {
		t.Errorf("surge_store_commit_failures_total went from %v to %v in 4 s without traffic while the store cannot commit; "+
			"the alert would not fire for a quiet node", before, after)
	}
}
