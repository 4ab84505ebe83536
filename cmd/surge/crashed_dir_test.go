package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/reconcile"
	"github.com/surgehq/surge/sqlite"
)

// TestReadOnlyCommandsLeaveCrashedDirUnwritten SIGKILLs a real `surge
// serve` after it confirmed ten orders: its WAL and -shm stay in the data
// directory, the orders in the WAL only. surge reconcile and surge backup
// read such a directory (docs/operations.md: "with or without a server
// running"); they must read every confirmed order without writing to it.
// The WAL is recovered by the next surge serve, under the directory's
// lock; a reader that rebuilt the -shm rewrote a file of the directory it
// promised to leave as it was.
func TestReadOnlyCommandsLeaveCrashedDirUnwritten(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	bin := surgeBinary(t)
	dataDir, token := t.TempDir(), "crashed-dir-admin-token"
	p := startProc(t, dataDir, token)
	saleID := createSale(t, p.base, token, 100, 1)
	hc := &http.Client{Timeout: 10 * time.Second}
	const sold = 10
	for i := range sold {
		a, err := purchase(t.Context(), hc, p.base, saleID, intent{user: fmt.Sprintf("u%d", i), key: "k", qty: 1})
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("purchase %d: %+v, %v; want 201", i, a, err)
		}
	}
	p.stop(t, syscall.SIGKILL, 10*time.Second)

	files := []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.FileName + "-shm", sqlite.LockName}
	before := fileStates(t, dataDir, files)
	for _, name := range files[1:3] {
		if before[name] == "missing" {
			t.Fatalf("setup: the killed server left no %s: %v", name, before)
		}
	}

	settlement := filepath.Join(t.TempDir(), "settlement.csv")
	if err := os.WriteFile(settlement, []byte("payment_id,order_id,amount,currency,status\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "reconcile", "--json", "--data-dir", dataDir, "--settlement", settlement).Output()
	var rep reconcile.Report
	if err != nil || json.Unmarshal(out, &rep) != nil || rep.Orders != sold || len(rep.Mismatches) != 0 {
		t.Errorf("surge reconcile of the killed server's directory: %v\n%s\nwant %d orders and no mismatch", err, out, sold)
	}
	to := filepath.Join(t.TempDir(), "backup.db")
	out, err = exec.Command(bin, "backup", "--data-dir", dataDir, "--to", to).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("1 sales, %d orders", sold)) {
		t.Errorf("surge backup of the killed server's directory: %v\n%s\nwant 1 sale and %d orders", err, out, sold)
	}

	after := fileStates(t, dataDir, files)
	for _, name := range files {
		if before[name] != after[name] {
			t.Errorf("surge reconcile and surge backup of a directory whose server was killed changed %s: before %s, after %s; "+
				"want it left as it was, for surge serve to recover under the directory's lock", name, before[name], after[name])
		}
	}

	// The next serve recovers the WAL: every confirmed order is there.
	p = startProc(t, dataDir, token)
	for i := range sold {
		a, err := purchase(t.Context(), hc, p.base, saleID, intent{user: fmt.Sprintf("u%d", i), key: "k", qty: 1})
		if err != nil || a.status != http.StatusCreated || !a.replay {
			t.Errorf("purchase %d again after the restart: %+v, %v; want the first 201 replayed", i, a, err)
		}
	}
	if st := p.stop(t, syscall.SIGTERM, 15*time.Second); !st.Success() {
		t.Errorf("serve exited with %v", st)
	}
}

// fileStates is each named file of dir as its size, modification time
// and content hash ("missing" if there is none): a file written again
// with the same bytes still shows.
func fileStates(t *testing.T, dir string, names []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(names))
	for _, name := range names {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			m[name] = "missing"
			continue
		}
		b, rerr := os.ReadFile(path)
		if err = errors.Join(err, rerr); err != nil {
			t.Fatal(err)
		}
		m[name] = fmt.Sprintf("%d bytes, modified %s, sha256 %.8x", len(b), fi.ModTime().Format(time.RFC3339Nano), sha256.Sum256(b))
	}
	return m
}
