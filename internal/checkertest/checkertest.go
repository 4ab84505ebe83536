// Package checkertest proves that a test's checker catches a broken
// guarantee. The checkers of the store contract suite and of the crash
// tests report through *testing.T, so their failure can only be seen from
// outside: the test runs itself again in a child process, where it feeds
// the checker a broken case, and expects that child to fail.
package checkertest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// env marks the child process. Not SURGE_*: cmd/surge's TestMain clears
// those.
const env = "CHECKER_TEST_CHILD"

// Child reports whether this process is the child: the test should then
// run its checker on the broken case.
func Child() bool { return os.Getenv(env) != "" }

// ExpectFailure runs t again in a child test process and fails t unless
// the child fails saying want.
func ExpectFailure(t *testing.T, want string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("the checker passed a broken case:\n%s", tail(out))
		return
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("the checker failed, but not saying %q:\n%s", want, tail(out))
	}
}

func tail(out []byte) string {
	const n = 3000
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return string(out)
}
