package sqlite_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/sqlite"
)

// exfatDir mounts a fresh exFAT filesystem (no hard links, as on a USB
// disk or many network shares) and returns its root, or skips the test
// where that cannot be done (not root, no FUSE, no exfat-fuse).
func exfatDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a filesystem needs root")
	}
	for _, tool := range []string{"mkfs.exfat", "mount.exfat-fuse", "losetup", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install exfat-fuse exfatprogs)", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "exfat.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.exfat", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.exfat: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	mnt := t.TempDir()
	if out, err := exec.Command("mount.exfat-fuse", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount.exfat-fuse: %v: %s", err, out)
	}
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); exec.Command("umount", mnt).Run() != nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("umount %s failed for 10s", mnt)
				return
			}
		}
	})
	return mnt
}

// TestBackupToFilesystemWithoutHardLinks: the backup gave the checked
// copy its name with a hard link (so that a file that appeared meanwhile
// is never overwritten), and a filesystem without hard links (exFAT or
// FAT on a USB disk, many network shares) refused it: after copying the
// whole database the backup failed, "operation not permitted", as if a
// permission were missing, on every try. It must be written there too,
// and still never over an existing file.
func TestBackupToFilesystemWithoutHardLinks(t *testing.T) {
	mnt := exfatDir(t)
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.CreateSale(ctx, newSale(t, "s1", 10, 1)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := filepath.Join(mnt, "backup.db")
	info, err := sqlite.Backup(ctx, dir, to)
	if err != nil {
		t.Fatalf("Backup to a filesystem without hard links: %v", err)
	}
	if info.Sales != 1 {
		t.Errorf("the backup holds %d sales, want 1", info.Sales)
	}
	if fi, err := os.Stat(to); err != nil || fi.Size() != info.Bytes {
		t.Errorf("the backup file: %v (%v), want %d bytes", fi, err, info.Bytes)
	}
	if _, err := sqlite.Backup(ctx, dir, to); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second backup to the same name: %v, want it refused as existing", err)
	}
	es, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name() != "backup.db" {
			t.Errorf("%s left beside the backup", e.Name())
		}
	}
}
