package main

import (
	"context"
	"strings"
	"testing"
)

// TestConfigFileCommandLineOnlyKeys: a file holding print-config (or
// config) was refused as an "unknown key", naming serve's flags as the
// keys, while print-config is one of them: the error sent the operator
// to --help, which lists it. It must say the key is command-line only,
// and what to do instead.
func TestConfigFileCommandLineOnlyKeys(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{"print-config: true\n", []string{`key "print-config" is command-line only`, "--print-config"}},
		{"config: other.yaml\n", []string{`key "config" is command-line only`, "--config or SURGE_CONFIG"}},
	} {
		p := writeConfig(t, "surge.yaml", tc.body)
		code, stdout, stderr := runCLI(context.Background(), "serve", "--config", p, "--data-dir", t.TempDir())
		if code != 2 || stdout != "" || !oneLine(stderr) {
			t.Errorf("serve --config (%q): exit %d, stderr %q; want exit 2 and one line", tc.body, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("serve --config (%q): stderr %q; want it to say %q", tc.body, stderr, w)
			}
		}
		if strings.Contains(stderr, "unknown key") {
			t.Errorf("serve --config (%q): stderr %q calls a flag of serve an unknown key", tc.body, stderr)
		}
	}
}
