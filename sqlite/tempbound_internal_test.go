package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockedTempGivesUp: a backup's temporary copy is made again when
// another backup's sweep removed it in the moment before its flock. When
// it is gone every time (a cleaner that deletes new files there as they
// appear, a filesystem whose names do not keep their files), making it
// again for good would leave `surge backup` spinning and filling the
// directory with files, never answering. It must give up after a few
// tries with an error that says why. The identity check here fails every
// time, as it would under such a cleaner; after 1000 tries the check
// lets it through, so that a loop without bound ends and is reported.
func TestLockedTempGivesUp(t *testing.T) {
	const enough = 1000
	dir := t.TempDir()
	tries := 0
	f, err := lockedTempIf(dir, "backup.db", func(*os.File) bool {
		tries++
		return tries > enough
	})
	if err == nil {
		f.Close()
		t.Fatalf("lockedTemp made its temporary copy %d times, the copy gone after each, and kept going; "+
			"want it to give up after a few tries with an error", tries)
	}
	if tries > 100 {
		t.Errorf("lockedTemp gave up after %d tries; want a few", tries)
	}
	if !strings.Contains(err.Error(), "gone") {
		t.Errorf("lockedTemp gave up with %q; want the error to say the temporary copy was gone each time", err)
	}
}

// TestLockedTempGivesUpLeavesNothing: a backup that gives up on its
// temporary copy (TestLockedTempGivesUp) must not leave the copies it
// made in the backup's directory, one for each try: a sync tool that
// rewrites each new file there (a new file renamed over the name), or a
// filesystem whose inode numbers change between looks (SMB without
// server inodes), fails the check each time while a file stays.
func TestLockedTempGivesUpLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		named func(*os.File) bool
	}{
		{"each copy rewritten under its name", func(f *os.File) bool {
			tmp := filepath.Join(filepath.Dir(f.Name()), "sync-tool-part")
			if err := os.WriteFile(tmp, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f.Name()); err != nil {
				t.Fatal(err)
			}
			return stillNamed(f)
		}},
		{"inode numbers that change", func(*os.File) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := lockedTempIf(dir, "backup.db", tc.named)
			if err == nil {
				f.Close()
				t.Fatal("lockedTemp gave a copy whose check failed every time")
			}
			es, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) > 0 {
				var names []string
				for _, e := range es {
					names = append(names, e.Name())
				}
				t.Errorf("lockedTemp gave up and left %d files in the backup's directory: %v; want none", len(names), names)
			}
		})
	}
}
