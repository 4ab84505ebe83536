package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestBackupKilledLeavesNoCopy SIGKILLs `surge backup` while it writes its
// copy (the OOM killer, `timeout -s KILL`, a container stopped hard): the
// temporary copy, as large as the database, stays behind, since the
// process had no chance to remove it. The next backup into that directory
// must take it away; otherwise every killed backup leaves another one and
// the backup disk fills with hidden copies.
func TestBackupKilledLeavesNoCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("backup test builds and runs the binary")
	}
	bin := surgeBinary(t)
	dataDir := t.TempDir()
	bigDatabase(t, dataDir, 60_000)
	out := t.TempDir()
	to := filepath.Join(out, "backup.db")

	var left []string
	for attempt := 0; len(left) == 0; attempt++ {
		if attempt == 5 {
			t.Fatal("no backup was caught writing its copy in 5 tries")
		}
		cmd := exec.Command(bin, "backup", "--data-dir", dataDir, "--to", to)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once its temporary copy has bytes in it.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if tmps := hiddenCopies(t, out); len(tmps) > 0 {
				if fi, err := os.Stat(filepath.Join(out, tmps[0])); err == nil && fi.Size() > 0 {
					break
				}
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.Remove(to) // a backup that finished before the kill
		left = hiddenCopies(t, out)
	}
	var size int64
	for _, n := range left {
		if fi, err := os.Stat(filepath.Join(out, n)); err == nil {
			size += fi.Size()
		}
	}
	if b, err := exec.Command(bin, "backup", "--data-dir", dataDir, "--to", to).CombinedOutput(); err != nil {
		t.Fatalf("the backup after the killed one: %v\n%s", err, b)
	}
	if still := hiddenCopies(t, out); len(still) > 0 {
		t.Fatalf("a backup killed by SIGKILL left %v (%d bytes) in %s; the next backup into the directory left %v there: "+
			"expected only %s, each killed backup would otherwise leave one more copy", left, size, out, still, filepath.Base(to))
	}
	if _, err := os.Stat(to); err != nil {
		t.Fatalf("no backup written: %v", err)
	}
}

// hiddenCopies lists the files in dir other than the backups themselves:
// the temporary copies (and their journals) backups write beside them.
func hiddenCopies(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// bigDatabase makes dir the data directory of a sale of n orders, large
// enough that a backup's copy takes a while to write.
func bigDatabase(t *testing.T, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	name, id, stock, limit, hold := "big", "big", int64(n), int64(1), int64(600)
	now := time.Now()
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2000 {
		batch := make([]surge.Purchase, 0, 2000)
		for j := i; j < min(i+2000, n); j++ {
			batch = append(batch, surge.Purchase{UserID: fmt.Sprintf("buyer%d", j), Quantity: 1, IdempotencyKey: fmt.Sprintf("key%d", j)})
		}
		if _, _, err := s.Reserve(ctx, "big", batch, surge.At(now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
