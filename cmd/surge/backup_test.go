package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// exportOrders reads every order of a sale from a server.
func exportOrders(t *testing.T, base, token, saleID string) map[string]api.Order {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := make(map[string]api.Order)
	if err := client.New(base, token).Orders(ctx, saleID, func(o api.Order) error { m[o.ID] = o; return nil }); err != nil {
		t.Fatalf("export orders: %v", err)
	}
	return m
}

// TestBackupDuringSpike runs `surge backup` while a crowd buys from
// `surge serve`, restores the copy into a new data directory and serves
// it: it starts (quick check, high-water mark, invariants), holds every
// order confirmed before the backup began, holds only orders the live
// server holds, as it holds them, and sells no unit twice. Restoring it
// over the live directory instead is refused: it is behind what that
// directory confirmed.
func TestBackupDuringSpike(t *testing.T) {
	if testing.Short() {
		t.Skip("backup test builds and runs the binary")
	}
	const (
		workers = 32
		stock   = spikeStock
		limit   = spikeLimit
	)
	dataDir, token := t.TempDir(), "backup-admin-token"
	p := startProc(t, dataDir, token)
	s := pacedSpike(t, p.base, token, newRand(t))
	file := filepath.Join(t.TempDir(), "surge-backup.db")
	var (
		before       []api.Order // answered 201 before the backup began
		out          []byte
		backupErr    error
		took         time.Duration
		createdAfter int64
	)
	// until reports whether cond held within a minute.
	until := func(cond func() bool) bool {
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
		}
		return true
	}
	s.fire(p.base, workers, func() {
		// The crowd is buying: answers have come back.
		until(func() bool { return s.created.Load() >= 50 })
		s.mu.Lock()
		before = append(before, s.acked...)
		s.mu.Unlock()
		start := time.Now()
		out, backupErr = exec.Command(surgeBinary(t), "backup", "--data-dir", dataDir, "--to", file).CombinedOutput()
		took = time.Since(start)
		n := s.created.Load()
		until(func() bool { return s.created.Load() >= n+50 }) // the crowd buys on
		createdAfter = s.created.Load() - n
	})
	if backupErr != nil {
		t.Fatalf("surge backup: %v\n%s", backupErr, out)
	}
	t.Logf("surge backup took %v during the spike: %s", took, strings.TrimSpace(string(out)))
	if len(before) == 0 || createdAfter == 0 {
		t.Fatalf("the backup did not land mid-spike: %d orders before it, %d after", len(before), createdAfter)
	}
	settle(t, p.base, s.saleID)
	live := exportOrders(t, p.base, token, s.saleID)

	restored := t.TempDir()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "surge.db"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	r := startProc(t, restored, token)
	got := exportOrders(t, r.base, token, s.saleID)
	for _, o := range before {
		if g, ok := got[o.ID]; !ok || g.UserID != o.UserID || g.Quantity != o.Quantity || g.IdempotencyKey != o.IdempotencyKey {
			t.Errorf("order %s (user %s, qty %d), answered 201 before the backup began, is %+v in it", o.ID, o.UserID, o.Quantity, g)
		}
	}
	var units int64
	held := make(map[string]int64)
	keys := make(map[string]string)
	for id, o := range got {
		l, ok := live[id]
		if !ok || l.UserID != o.UserID || l.Quantity != o.Quantity || l.IdempotencyKey != o.IdempotencyKey || l.Status != o.Status {
			t.Errorf("order %+v of the backup is %+v on the live server", o, l)
		}
		k := o.UserID + "\x00" + o.IdempotencyKey
		if prev, dup := keys[k]; dup {
			t.Errorf("orders %s and %s share user %s and key %q", prev, id, o.UserID, o.IdempotencyKey)
		}
		keys[k] = id
		units += o.Quantity
		held[o.UserID] += o.Quantity
	}
	for u, n := range held {
		if n > limit {
			t.Errorf("user %s holds %d units in the backup, limit %d", u, n, limit)
		}
	}
	sale, err := client.New(r.base, token).Sale(t.Context(), s.saleID)
	if err != nil {
		t.Fatal(err)
	}
	if units > stock || sale.Remaining != stock-units {
		t.Errorf("restored sale: remaining %d of %d; its orders hold %d", sale.Remaining, stock, units)
	}
	t.Logf("restored %d orders (%d units; %d answered before the backup); the live server went on to %d", len(got), units, len(before), len(live))

	// Restored over the directory it came from, the copy is behind that
	// directory's high-water mark: refused, as docs/operations.md says.
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Fatalf("serve exited with %v", st)
	}
	db := filepath.Join(dataDir, "surge.db")
	for _, f := range []string{db + "-wal", db + "-shm"} {
		_ = os.Remove(f)
	}
	if err := os.WriteFile(db, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if refusal := runRefused(t, dataDir); !strings.Contains(refusal, "surge.hwm") {
		t.Errorf("restore over the live directory: the refusal does not name the mark:\n%s", refusal)
	}
}

// TestRestoreRenamedOverServingDirectoryRefused: the operator takes a
// backup with `surge backup`, buyers go on buying, then the backup is put
// in place over surge.db while `surge serve` still runs (copied beside it
// and renamed over it, as rsync and deploy tools do), and the server is
// restarted. docs/operations.md: the older copy "holds fewer: the start
// refuses it as 'behind what it confirmed'". The clean stop sealed the
// copy with its own progress, so the start trusted the seal, skipped the
// count and the high-water mark, and served the backup: the orders
// confirmed after it were gone and their units on sale again.
func TestRestoreRenamedOverServingDirectoryRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir, token := t.TempDir(), "restore-inuse-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 10, 1)
	hc := &http.Client{Timeout: 10 * time.Second}
	buy := func(user string) {
		t.Helper()
		a, err := purchase(t.Context(), hc, p.base, saleID, intent{user: user, key: "k-" + user, qty: 1})
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("purchase of %s: %+v, %v", user, a, err)
		}
	}
	buy("early")
	backup := filepath.Join(t.TempDir(), "surge-backup.db")
	if out, err := exec.Command(surgeBinary(t), "backup", "--data-dir", dataDir, "--to", backup).CombinedOutput(); err != nil {
		t.Fatalf("surge backup: %v\n%s", err, out)
	}
	for i := range 5 {
		buy(fmt.Sprintf("late%d", i)) // 201: durable, promised never lost
	}
	// An idle moment (the store empties its WAL after 2 s idle), then the
	// restore over the directory in use, then the restart.
	time.Sleep(3 * time.Second)
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dataDir, "surge.db.restore")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dataDir, "surge.db")); err != nil {
		t.Fatal(err)
	}
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Fatalf("serve exited with %v", st)
	}
	addr := freeAddr(t)
	q, err := launchCmd(t, serveCmd(surgeBinary(t), dataDir, token, addr), addr)
	if err != nil {
		if !strings.Contains(err.Error(), "surge.hwm") {
			t.Errorf("the start was refused without naming the high-water mark: %v", err)
		}
		return // refused, as documented
	}
	got := exportOrders(t, q.base, token, saleID)
	missing := 0
	for _, u := range []string{"late0", "late1", "late2", "late3", "late4"} {
		found := false
		for _, o := range got {
			found = found || o.UserID == u
		}
		if !found {
			missing++
		}
	}
	t.Errorf("the restart served the older copy: %d orders, %d of the 5 confirmed after the backup missing; want the start refused as behind what it confirmed",
		len(got), missing)
}
