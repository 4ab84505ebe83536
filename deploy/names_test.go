package deploy_test

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeployNamesAreServeFlags: serve applies SURGE_<FLAG> for each of
// its flags and ignores every other variable, so a misspelt name in a
// deploy file (SURGE_DRAIN_DELY) is silently a default. Every SURGE_ name
// in deploy/ and every --flag the systemd unit and the Helm chart pass
// must be one of `surge serve --help`'s, as the built binary has them.
func TestDeployNamesAreServeFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "surge")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/surgehq/surge/cmd/surge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	if !flags["drain-delay"] || !flags["http-addr"] {
		t.Fatalf("surge serve --help lists no flags as expected:\n%s", help)
	}
	// Not serve's: the client commands' server, and the test's own switch.
	other := map[string]bool{"SURGE_SERVER": true, "SURGE_DEPLOY_PRINT_MEMLIMIT": true}
	env := regexp.MustCompile(`\bSURGE_[A-Z0-9_]+`)
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		text := read(t, path)
		for _, name := range env.FindAllString(text, -1) {
			if other[name] {
				continue
			}
			n++
			flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "SURGE_")), "_", "-")
			if !flags[flag] {
				t.Errorf("%s names %s, which is no flag's variable (surge serve has no --%s): serve ignores it", path, name, flag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Errorf("found %d SURGE_ names in deploy/; the walk missed the files", n)
	}
	// The flags the unit's ExecStart and the chart's pod pass to serve.
	for _, path := range []string{filepath.Join("systemd", "surge.service"), filepath.Join("helm", "surge", "templates", "_helpers.tpl")} {
		for _, line := range strings.Split(read(t, path), "\n") {
			if !strings.HasPrefix(line, "ExecStart=") && !regexp.MustCompile(`^ +- "?--`).MatchString(line) {
				continue
			}
			for _, m := range regexp.MustCompile(`--([a-z0-9-]+)`).FindAllStringSubmatch(line, -1) {
				if !flags[m[1]] {
					t.Errorf("%s passes --%s, which surge serve does not have: %s", path, m[1], strings.TrimSpace(line))
				}
			}
		}
	}
}
