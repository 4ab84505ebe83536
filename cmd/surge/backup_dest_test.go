package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// backupFailsNamingTo checks the outcome of a `surge backup --to to` that
// could not write to: exit status 1, one line on stderr naming to (not a
// temporary file of the backup's own) and saying why, and nothing left in
// to's directory that could pass for a backup.
func backupFailsNamingTo(t *testing.T, to, why string, code int, stdout, stderr string) {
	t.Helper()
	if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, to) ||
		!strings.Contains(stderr, why) || strings.Contains(stderr, ".tmp") {
		t.Errorf("backup --to %s: %d, stdout %q, stderr %q; want 1 and one line naming %s and the cause (%s), not a temporary file",
			to, code, stdout, stderr, to, why)
	}
	es, err := os.ReadDir(filepath.Dir(to))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		t.Errorf("the failed backup left %s in %s", e.Name(), filepath.Dir(to))
	}
}

// TestBackupToUnwritableDirectoryNamesIt: `surge backup --to` a file in a
// directory the user may not write (a root-owned /backups, run as the
// service's user) failed naming a temporary file of its own,
// "open /backups/.surge.db.123.tmp: permission denied", not the --to the
// operator gave. The test runs the binary as an unprivileged user, for
// whom permissions bite (root's writes pass them).
func TestBackupToUnwritableDirectoryNamesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("running the binary as another user needs root")
	}
	const nobody = 65534
	// Not t.TempDir(): its parents are 0700, which the user cannot pass.
	base, err := os.MkdirTemp("", "surge-backup-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "surge")
	copyFile(t, surgeBinary(t), bin, 0o755)
	// The service's own data directory, and a directory it may not write.
	dataDir := filepath.Join(base, "data")
	if err := os.CopyFS(dataDir, os.DirFS(newDataDir(t))); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dataDir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "backups")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dest, "surge.db")
	cmd := exec.Command(bin, "backup", "--data-dir", dataDir, "--to", to)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	backupFailsNamingTo(t, to, "permission denied", code, stdout.String(), stderr.String())
}

// TestBackupToReadOnlyFilesystemNamesIt: the same on a filesystem mounted
// read-only, which refuses root too.
func TestBackupToReadOnlyFilesystemNamesIt(t *testing.T) {
	dataDir := newDataDir(t)
	ro := smallDisk(t, "1m")
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("remount read-only: %v: %s", err, out)
	}
	to := filepath.Join(ro, "surge.db")
	code, stdout, stderr := runCLI(t.Context(), "backup", "--data-dir", dataDir, "--to", to)
	backupFailsNamingTo(t, to, "read-only file system", code, stdout, stderr)
}

// TestBackupToFullDiskNamesIt: a backup whose disk filled up while SQLite
// wrote the copy said "backup of /var/lib/surge/surge.db: database or disk
// is full", naming the served database, whose disk has room, and not the
// file and disk that were full.
func TestBackupToFullDiskNamesIt(t *testing.T) {
	dataDir := newDataDir(t)
	fi, err := os.Stat(filepath.Join(dataDir, "surge.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Room for a part of the copy only (tmpfs counts whole pages).
	disk := smallDisk(t, "16k")
	if fi.Size() <= 16<<10 {
		t.Fatalf("the database holds %d bytes: it would fit on the small disk", fi.Size())
	}
	to := filepath.Join(disk, "surge.db")
	code, stdout, stderr := runCLI(t.Context(), "backup", "--data-dir", dataDir, "--to", to)
	backupFailsNamingTo(t, to, "full", code, stdout, stderr)
	if strings.Contains(stderr, dataDir) {
		t.Errorf("the full backup disk is told as the data directory's: %q", stderr)
	}
}

// copyFile copies from to a new file to with mode perm.
func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
