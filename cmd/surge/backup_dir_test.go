package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/sqlite"
)

// newDataDir returns a data directory holding an empty embedded database.
func newDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBackupToMissingDirectoryNamesIt: `surge backup --to` a file in a
// directory that does not exist (or is a file) failed naming a temporary
// file of its own (".backup.db.123.tmp") rather than the directory the
// operator gave.
func TestBackupToMissingDirectoryNamesIt(t *testing.T) {
	dataDir := newDataDir(t)
	tmp := t.TempDir()
	plain := filepath.Join(tmp, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ dir, why string }{
		{filepath.Join(tmp, "no-such-dir"), "no such file or directory"},
		{plain, "not a directory"},
	} {
		to := filepath.Join(tt.dir, "backup.db")
		code, stdout, stderr := runCLI(t.Context(), "backup", "--data-dir", dataDir, "--to", to)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.dir+":") ||
			!strings.Contains(stderr, tt.why) || strings.Contains(stderr, ".tmp") {
			t.Errorf("backup --to %s: %d, stdout %q, stderr %q; want 1 and one line naming the directory %s (%s), not a temporary file",
				to, code, stdout, stderr, tt.dir, tt.why)
		}
	}
}
