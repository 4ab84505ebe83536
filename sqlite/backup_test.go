package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestBackupWhileWriting takes a backup while buyers reserve, then opens
// it as the database of a new directory: it loads (its quick check and
// invariants pass), it holds every order confirmed before the backup
// began, each as the live store holds it, and nothing the live store
// does not.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	const stock = 5000
	if err := s.CreateSale(ctx, newSale(t, "s1", stock, 1)); err != nil {
		t.Fatal(err)
	}
	buy := func(ctx context.Context, buyer string) (surge.Order, bool) {
		out, _, err := s.Reserve(ctx, "s1", []surge.Purchase{{UserID: buyer, Quantity: 1, IdempotencyKey: "k-" + buyer}}, surge.At(t0))
		if err != nil || out[0].Err != nil {
			return surge.Order{}, false
		}
		return out[0].Order, true
	}
	var confirmed []surge.Order // before the backup began
	for i := range 200 {
		if o, ok := buy(ctx, fmt.Sprintf("before%d", i)); ok {
			confirmed = append(confirmed, o)
		}
	}
	// Buyers go on while the backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				buy(ctx, fmt.Sprintf("during%d-%d", w, i))
			}
		})
	}
	to := filepath.Join(t.TempDir(), "backup.db")
	info, err := sqlite.Backup(ctx, dir, to)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if info.Sales != 1 || info.Orders < int64(len(confirmed)) {
		t.Errorf("Backup = %+v; want 1 sale and at least %d orders", info, len(confirmed))
	}
	if files, _ := filepath.Glob(filepath.Join(filepath.Dir(to), "*")); len(files) != 1 || files[0] != to {
		t.Errorf("the backup's directory holds %v; want the backup alone", files)
	}
	if _, err := sqlite.Backup(ctx, dir, to); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second Backup to the same file: %v; want it refused", err)
	}

	live := make(map[string]surge.Order)
	if err := s.Orders(ctx, "s1", func(o surge.Order) error { live[o.ID] = o; return nil }); err != nil {
		t.Fatal(err)
	}
	restored := t.TempDir()
	b, err := os.ReadFile(to)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, sqlite.FileName), b, 0o640); err != nil {
		t.Fatal(err)
	}
	r := open(t, restored)
	defer r.Close()
	got := make(map[string]surge.Order)
	var units int64
	if err := r.Orders(ctx, "s1", func(o surge.Order) error {
		got[o.ID] = o
		units += o.Quantity
		if l, ok := live[o.ID]; !ok || l.UserID != o.UserID || l.IdempotencyKey != o.IdempotencyKey || l.Quantity != o.Quantity {
			t.Errorf("order %+v of the backup is %+v in the live store", o, l)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != info.Orders {
		t.Errorf("the restored store holds %d orders, the backup counted %d", len(got), info.Orders)
	}
	for _, o := range confirmed {
		if _, ok := got[o.ID]; !ok {
			t.Errorf("order %s, confirmed before the backup began, is missing from it", o.ID)
		}
	}
	if rem, err := r.Remaining(ctx, "s1"); err != nil || rem != stock-units {
		t.Errorf("restored remaining = %d, %v; want %d", rem, err, stock-units)
	}
	t.Logf("backup of %d orders (%d bytes); the live store went on to %d", info.Orders, info.Bytes, len(live))

	// With no store open (no -shm, no -wal), the backup is the whole database.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "stopped.db")); err != nil || info.Orders != int64(len(live)) {
		t.Errorf("Backup of a stopped store = %+v, %v; want %d orders", info, err, len(live))
	}
}

// TestBackupRefusesRowBreakingCheck: a row that breaks a CHECK constraint
// (written into the database by another program, constraints ignored)
// makes the backup's quick check of its copy fail, as a start's would,
// and no backup file is left.
func TestBackupRefusesRowBreakingCheck(t *testing.T) {
	dir := soldAndClosed(t)
	execIgnoringChecks(t, filepath.Join(dir, sqlite.FileName), `INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
		VALUES ('o_bad', 's1', 'mallory', 1, 'refunded', '2026-01-01T00:00:00.000Z', '2026-01-01T00:15:00.000Z')`)
	to := filepath.Join(t.TempDir(), "copy.db")
	if _, err := sqlite.Backup(t.Context(), dir, to); err == nil || !strings.Contains(err.Error(), "quick_check") {
		t.Fatalf("Backup: %v; want its quick check to refuse the row", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(to), "*")); len(left) != 0 {
		t.Errorf("a refused backup left %v", left)
	}
}

// TestBackupInterruptedIsNotDamage stops backups of a healthy database
// (the caller's context cancelled, as SIGINT or SIGTERM does to `surge
// backup`) at moments spread over a whole backup: during VACUUM INTO,
// during the copy's quick check, after it. Each either completes or
// fails as interrupted; none may call the database damaged (an operator
// told that restores an older backup over a sound database), and none
// leaves a file behind.
func TestBackupInterruptedIsNotDamage(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	const orders = 60_000
	if err := s.CreateSale(ctx, newSale(t, "s1", orders, 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < orders; i += 2000 {
		batch := make([]surge.Purchase, 0, 2000)
		for j := i; j < i+2000; j++ {
			batch = append(batch, surge.Purchase{UserID: fmt.Sprintf("buyer%d", j), Quantity: 1, IdempotencyKey: fmt.Sprintf("key%d", j)})
		}
		if _, _, err := s.Reserve(ctx, "s1", batch, surge.At(t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// How long a whole backup takes here, to spread the interruptions over.
	began := time.Now()
	if _, err := sqlite.Backup(ctx, dir, filepath.Join(t.TempDir(), "whole.db")); err != nil {
		t.Fatal(err)
	}
	whole := time.Since(began)
	const tries = 24
	damaged, interrupted := 0, 0
	for i := range tries {
		out := t.TempDir()
		to := filepath.Join(out, "backup.db")
		cctx, cancel := context.WithTimeout(ctx, whole*time.Duration(i+1)/tries)
		_, err := sqlite.Backup(cctx, dir, to)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, sqlite.ErrDamaged):
			damaged++
			t.Errorf("backup interrupted after %v of %v: %v; expected an interruption, not damage (the database is sound)",
				whole*time.Duration(i+1)/tries, whole, err)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			interrupted++
		default:
			t.Errorf("backup interrupted after %v: unexpected error %v", whole*time.Duration(i+1)/tries, err)
		}
		left, _ := os.ReadDir(out)
		if (err == nil) != (len(left) == 1) || (err != nil && len(left) > 0) {
			names := []string{}
			for _, e := range left {
				names = append(names, e.Name())
			}
			t.Errorf("backup interrupted after %v (err %v) left %v in its directory", whole*time.Duration(i+1)/tries, err, names)
		}
	}
	t.Logf("whole backup %v; of %d interrupted ones, %d said interrupted, %d said damaged", whole, tries, interrupted, damaged)
}

// TestBackupRefusesNewerDatabase: `surge backup` of a database a newer
// version of Surge wrote, whose layout this build does not know (here a
// table it counts is renamed), must say so (ErrNewer, as a start and
// surge reconcile do) before it copies anything, not fail after the copy
// on a table it cannot find; and it leaves no file behind.
func TestBackupRefusesNewerDatabase(t *testing.T) {
	ctx := t.Context()
	dir := newerWithSale(t, `ALTER TABLE orders RENAME TO order_log`)
	out := t.TempDir()
	to := filepath.Join(out, "backup.db")
	_, err := sqlite.Backup(ctx, dir, to)
	if !errors.Is(err, sqlite.ErrNewer) {
		t.Errorf("Backup of a newer version's database (schema version 1000, a table renamed): %v; want ErrNewer, saying a newer version of Surge wrote it", err)
	}
	if es, _ := os.ReadDir(out); len(es) > 0 {
		t.Errorf("the refused backup left %d files in the backup directory (%s ...); want none", len(es), es[0].Name())
	}
}
