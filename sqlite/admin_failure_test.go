//go:build linux

package sqlite_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/logrepeat"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// refusingWrites runs f while the disk refuses this process's writes: the
// file-size limit (RLIMIT_FSIZE) at 0 fails every write to a regular file
// with EFBIG (Go ignores SIGXFSZ), as a full or failing disk does.
func refusingWrites(t *testing.T, f func()) {
	t.Helper()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 0, Max: was.Max}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// TestNoSealAfterAFailedAdminWrite: a PATCH or an archive whose write the
// disk refused (full, failing) is a failed commit of the store as a
// purchase's is: the store must say it is not ready until a commit
// succeeds again, and its Close must leave no seal, so the next start
// checks the file in full (docs/architecture.md). Those writes go
// straight to the writer's connection, and their failure was recorded
// nowhere: ready, and sealed as if no write had ever failed.
func TestNoSealAfterAFailedAdminWrite(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		write func(*sqlite.Store) error
	}{
		{"PATCH", func(s *sqlite.Store) error {
			_, err := s.UpdateSale(t.Context(), "s1", surge.SalePatch{Paused: new(true)}, surge.At(t0.Add(time.Minute)))
			return err
		}},
		{"archive", func(s *sqlite.Store) error {
			_, err := s.ArchiveSale(t.Context(), "s1", t0.Add(2*time.Hour))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logged servicetest.Log
			s, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if err != nil {
				t.Fatal(err)
			}
			id, name, stock, limit, ends := "s1", "S", int64(5), int64(1), t0.Add(time.Hour)
			sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, EndsAt: &ends}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSale(t.Context(), sale); err != nil {
				t.Fatal(err)
			}
			var werr error
			refusingWrites(t, func() { werr = tc.write(s) })
			if werr == nil {
				t.Fatal("the write succeeded while the disk refused writes")
			}
			if err := s.Ready(t.Context()); err == nil {
				t.Errorf("Ready after the %s's write failed (%v): nil, want the failure", tc.name, werr)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, sqlite.SealName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a store whose %s's write failed (%v) left a seal: %v", tc.name, werr, err)
			}
			// The stop says so, or the operator reads only "stopped
			// cleanly" and wonders at the next start's full check.
			if !strings.Contains(logged.String(), "level=WARN msg=\"no seal left") {
				t.Errorf("the close of a store whose %s's write failed logged no warning of the missing seal:\n%s", tc.name, logged.String())
			}
			s = open(t, dir)
			defer s.Close()
			if !s.FullyChecked() {
				t.Error("the start after it was not checked in full")
			}
		})
	}
}

// TestExpiryFailureLoggedOnce: the expiry job runs every second, and
// while the disk refuses its commits each pass fails the same way. Its
// ERROR line is written once, then at most once a logrepeat.Every, as a
// failing purchase batch's is, and a pass that succeeds again says so;
// before, a failing disk wrote one "expire holds" ERROR a second for as
// long as it failed.
func TestExpiryFailureLoggedOnce(t *testing.T) {
	var logged servicetest.Log
	log := slog.New(slog.NewTextHandler(&logged, nil))
	var due atomic.Bool // the hold is over once the disk refuses writes
	now := func() time.Time {
		if due.Load() {
			return t0.Add(24 * time.Hour)
		}
		return t0
	}
	s := openWith(t, t.TempDir(), sqlite.Options{Now: now, Logger: log})
	if err := s.CreateSale(t.Context(), newSale(t, "s", 10, 5)); err != nil {
		t.Fatal(err)
	}
	if out, _, err := s.Reserve(t.Context(), "s", []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(t0)); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("Reserve = %+v, %v", out, err)
	}
	// The job's own passes, with the disk refusing writes for four of them.
	refusingWrites(t, func() {
		due.Store(true)
		time.Sleep(4500 * time.Millisecond)
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logged.String(), "holds expired") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out := logged.String()
	if n := strings.Count(out, `msg="expire holds"`); n != 1 {
		t.Errorf("%d \"expire holds\" ERROR lines over four failed passes within %v, want 1:\n%s", n, logrepeat.Every, out)
	}
	if !strings.Contains(out, "expiry of holds succeeds again") {
		t.Errorf("no recovery line after the disk took writes again:\n%s", out)
	}
}
