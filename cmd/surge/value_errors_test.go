package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestBadValueSaysWhatItTakes: a value its flag cannot parse, on the
// command line, in a SURGE_* variable or in the config file, is refused
// with what the flag takes. The flag package's own refusal is "parse
// error" for a duration without its unit (`shutdown-timeout: 30` in a
// file, the commonest slip), a fraction given for a whole number and a
// bad boolean alike, which leaves the operator guessing.
func TestBadValueSaysWhatItTakes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := surgeBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		env  string
		file string // the config file's body
		want []string
	}{
		{"flag duration", []string{"serve", "--shutdown-timeout", "30"}, "", "",
			[]string{"-shutdown-timeout", "want a duration with its unit"}},
		{"env duration", []string{"serve"}, "SURGE_DRAIN_DELAY=5", "",
			[]string{"SURGE_DRAIN_DELAY", "want a duration with its unit"}},
		{"file duration", []string{"serve"}, "", "shutdown-timeout: 30\n",
			[]string{`key "shutdown-timeout"`, "want a duration with its unit"}},
		{"file whole number", []string{"serve"}, "", "max-conns: 1.5\n",
			[]string{`key "max-conns"`, "want a whole number"}},
		{"file boolean", []string{"serve"}, "", "shed: maybe\n",
			[]string{`key "shed"`, "want true or false"}},
		{"flag boolean", []string{"serve", "--shed=maybe"}, "", "",
			[]string{"-shed", "want true or false"}},
		{"flag number", []string{"serve", "--rate-limit-ip", "fast"}, "", "",
			[]string{"-rate-limit-ip", "want a number"}},
		{"sale create whole number", []string{"sale", "create", "--name", "x", "--stock", "10.5"}, "", "",
			[]string{"-stock", "want a whole number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, tc.args...)
			if tc.file != "" {
				args = append(args, "--config", writeConfig(t, "surge.yaml", tc.file))
			}
			if tc.args[0] == "serve" {
				args = append(args, "--print-config", "--data-dir", t.TempDir())
			}
			cmd := exec.Command(bin, args...)
			if tc.env != "" {
				cmd.Env = append(cmd.Environ(), tc.env)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("surge %q: %v, want exit status 2; stderr %q", args, err, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("surge %q refused with %q, which does not say %q", args, strings.TrimSpace(stderr.String()), w)
				}
			}
		})
	}
}
