package sqlite_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestBuildsForWindows: the package and its tests compile and pass vet
// for Windows, where flock(2) does not exist and Open must refuse the data
// directory rather than serve it unlocked (TestOpenRefusedWithoutFlock,
// lock_other_test.go, runs there).
func TestBuildsForWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the package and its dependencies")
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(runtime.GOROOT(), "bin", "go"), "vet", ".")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go vet ./sqlite: %v\n%s", err, out)
	}
}
