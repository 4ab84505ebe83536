package version

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	checkout := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/surgehq/surge", Version: "v0.0.0-20261203120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	// `go install github.com/surgehq/surge/cmd/surge@v1.4.0` records the
	// module version and no VCS settings.
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/surgehq/surge", Version: "v1.4.0"}}
	for _, tt := range []struct {
		name          string
		stamp, stampC string
		bi            *debug.BuildInfo
		want          Info
		wantString    string
	}{
		{"make build stamps win", "v1.5.0", "fedcba9876543210fedcba9876543210fedcba98", checkout,
			Info{Version: "v1.5.0", Commit: "fedcba9876543210fedcba9876543210fedcba98", GoVersion: "go1.26.8"},
			"v1.5.0 (commit fedcba9876543210fedcba9876543210fedcba98, go1.26.8)"},
		{"go build in a checkout", "", "", checkout,
			Info{Version: checkout.Main.Version, Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, GoVersion: "go1.26.8"},
			checkout.Main.Version + " (commit 0123456789abcdef0123456789abcdef01234567+dirty, go1.26.8)"},
		{"go install @version", "", "", installed,
			Info{Version: "v1.4.0", GoVersion: "go1.26.8"}, "v1.4.0 (commit unknown, go1.26.8)"},
		{"stamped version, commit from the checkout", "v1.5.0", "", checkout,
			Info{Version: "v1.5.0", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, GoVersion: "go1.26.8"},
			"v1.5.0 (commit 0123456789abcdef0123456789abcdef01234567+dirty, go1.26.8)"},
		{"nothing recorded", "", "", nil,
			Info{Version: "(devel)", GoVersion: runtime.Version()}, "(devel) (commit unknown, " + runtime.Version() + ")"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.stamp, tt.stampC, tt.bi)
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String() = %q, want %q", s, tt.wantString)
			}
		})
	}
}

// TestBinary builds cmd/surge twice, as `make build` does (version and
// commit stamped with -ldflags) and plainly, and asks each for its
// version through `surge version` and `surge --version`.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	build := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		bin := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, goTool, append(append([]string{"build", "-o", bin}, args...), "github.com/surgehq/surge/cmd/surge")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		return bin
	}
	versionOf := func(bin string) string {
		t.Helper()
		var outs []string
		for _, arg := range []string{"version", "--version"} {
			out, err := exec.Command(bin, arg).Output()
			if err != nil {
				t.Fatalf("%s %s: %v", filepath.Base(bin), arg, err)
			}
			outs = append(outs, string(out))
		}
		if outs[0] != outs[1] {
			t.Errorf("surge version says %q, surge --version %q", outs[0], outs[1])
		}
		return outs[0]
	}

	const commit = "fedcba9876543210fedcba9876543210fedcba98"
	stamped := build("stamped", "-ldflags",
		"-X github.com/surgehq/surge/version.version=v9.8.7 -X github.com/surgehq/surge/version.commit="+commit)
	if got, want := versionOf(stamped), "surge v9.8.7 (commit "+commit+", "+runtime.Version()+")\n"; got != want {
		t.Errorf("stamped build: %q, want %q", got, want)
	}

	// Unstamped: the build info's module version and, in a git checkout,
	// its revision (-buildvcs=true: GOFLAGS may turn VCS stamping off).
	plainBin := build("plain", "-buildvcs=true")
	plain := versionOf(plainBin)
	if !regexp.MustCompile(`^surge \S+ \(commit \S+, go\S+\)\n$`).MatchString(plain) {
		t.Fatalf("plain build: %q", plain)
	}
	// The go command stamps a revision only where .git is a directory (a
	// clone, as CI's), not in a `git worktree`, whose .git is a file.
	if fi, err := os.Stat(filepath.Join("..", ".git")); err != nil || !fi.IsDir() {
		t.Logf("not a git clone: the revision from the build info is not checked (%q)", plain)
		return
	}
	// The revision the go command read at the build, from the binary
	// itself: HEAD read again now may have moved meanwhile (a commit made
	// while the tests ran). It must be a commit of this checkout.
	info, err := exec.Command(goTool, "version", "-m", plainBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=(\S+)$`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("plain build in a git clone: no vcs.revision in its build info:\n%s", info)
	}
	rev := string(m[1])
	if err := exec.Command("git", "cat-file", "-e", rev+"^{commit}").Run(); err != nil {
		t.Errorf("plain build in a git clone: its build info's revision %s is no commit of the checkout: %v", rev, err)
	}
	if !strings.Contains(plain, "(commit "+rev) {
		t.Errorf("plain build in a checkout at %s: %q lacks the revision from the build info", rev, plain)
	}
}
