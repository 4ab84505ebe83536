package sqlite

import (
	"os"
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
