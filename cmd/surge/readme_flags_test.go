package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeCommandRowsNameEveryFlag: README's command table lists the
// flags of these commands in full, so a flag missing there is one a new
// user reading it never learns of.
func TestReadmeCommandRowsNameEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, cmd := range []string{"demo", "probe", "backup", "reconcile"} {
		var row string
		for line := range strings.SplitSeq(string(readme), "\n") {
			if strings.HasPrefix(line, "| `surge "+cmd+" ") {
				row = line
				break
			}
		}
		if row == "" {
			t.Errorf("README has no row for surge %s", cmd)
			continue
		}
		code, help, _ := runCLI(cancelled(), cmd, "--help")
		if code != 0 {
			t.Fatalf("surge %s --help: exit %d", cmd, code)
		}
		for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
			if !strings.Contains(row, "--"+m[1]) {
				t.Errorf("README's row of surge %s does not name --%s", cmd, m[1])
			}
		}
	}
}
