package sqlite_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// TestStartRemovesTemporaryFiles: a process killed while it wrote the
// ledger image (a large one takes seconds, and the idle server refreshes
// it on its own) or the clean-shutdown seal left the temporary file it
// writes them into beside the data, as large as the image, and only a
// later write of the same file replaced it: a data directory whose sales
// no longer reach --ledger-image-min kept it for good. Nothing reads
// those files, so the next start, which holds the directory's lock,
// removes them.
func TestStartRemovesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	opts := sqlite.Options{NoExpiry: true}
	s := openWith(t, dir, opts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := []string{sqlite.ImageName + ".tmp", sqlite.SealName + ".tmp"}
	for _, n := range left {
		if err := os.WriteFile(filepath.Join(dir, n), bytes.Repeat([]byte{0xAB}, 1<<20), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s = openWith(t, dir, opts)
	for _, n := range left {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s, left by a process killed while writing it, still in the data directory after a start", n)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, sqlite.ImageName+".tmp")); err == nil {
		t.Errorf("%s still in the data directory after a start and a stop", sqlite.ImageName+".tmp")
	}
}
