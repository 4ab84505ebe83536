//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge/sqlite"
)

// TestBackupBesideFifoDoesNotHang: a backup sweeps the directory of --to
// for copies killed backups left, names like ".backup.db.123.tmp". Anyone
// who can write to that directory (a shared backup disk, /tmp) can put a
// FIFO there under such a name, or a symlink to one: opening it to take
// its flock waited for a writer that never comes, and the backup hung for
// good, every nightly run after it too. A backup must pass over what is
// no file of its own and finish.
func TestBackupBesideFifoDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(t.Context(), newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		make func(out, fifo string) error
	}{
		{"fifo", func(out, fifo string) error { return syscall.Mkfifo(fifo, 0o666) }},
		{"symlink to a fifo", func(out, fifo string) error {
			target := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(target, 0o666); err != nil {
				return err
			}
			return os.Symlink(target, fifo)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			to := filepath.Join(out, "backup.db")
			fifo := filepath.Join(out, ".backup.db.123.tmp")
			if err := c.make(out, fifo); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := sqlite.Backup(t.Context(), dir, to)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("backup beside a %s named like a leftover copy: %v; expected it written", c.name, err)
				}
			case <-time.After(10 * time.Second):
				// Free the stuck open, so that the test process can end.
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				<-done
				t.Fatalf("backup beside a %s named %s had not returned after 10 s (it waits for a writer to the FIFO that never comes); expected it to pass over it and finish in well under a second",
					c.name, filepath.Base(fifo))
			}
			if _, err := os.Stat(to); err != nil {
				t.Fatalf("no backup written: %v", err)
			}
		})
	}
}
