package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretOverridesFileAcrossSources: docs/configuration.md: the file,
// the SURGE_* variables and the command line each override the ones before
// them. A secret and its -file are one setting in two spellings, yet the
// deploy example's config file (admin-token-file) with SURGE_ADMIN_TOKEN
// set in the unit's environment refused the start, "give --admin-token or
// --admin-token-file, not both", naming two flags nobody had given. The
// higher source wins, either spelling, and the file's key is named as
// overridden; both in one source are still refused.
func TestSecretOverridesFileAcrossSources(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte("token-from-the-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jwtFile := filepath.Join(dir, "jwt-secret")
	if err := os.WriteFile(jwtFile, []byte(strings.Repeat("f", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	printed := func(t *testing.T, env []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(surgeBinary(t), append([]string{"serve", "--print-config", "--data-dir", filepath.Join(t.TempDir(), "d")}, args...)...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SURGE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	for _, tc := range []struct {
		name string
		file string
		env  []string
		args []string
		want []string // lines of --print-config
	}{
		{"variable over the file's -file", "admin-token-file: " + tokenFile + "\n",
			[]string{"SURGE_ADMIN_TOKEN=token-from-the-env-0123"}, nil,
			[]string{`admin-token: "xxxxx" # env`, `admin-token-file: "" # env`}},
		{"flag's -file over the file's secret", "jwt-secret: " + strings.Repeat("s", 32) + "\n",
			nil, []string{"--jwt-secret-file", jwtFile},
			[]string{`jwt-secret: "" # flag`, `jwt-secret-file: "` + jwtFile + `" # flag`}},
		{"flag over the variable's -file", "",
			[]string{"SURGE_ADMIN_TOKEN_FILE=" + tokenFile}, []string{"--admin-token", "token-from-the-flag-0123"},
			[]string{`admin-token: "xxxxx" # flag`, `admin-token-file: "" # flag`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				args = append(args, "--config", writeConfig(t, "surge.yaml", tc.file))
			}
			code, out := printed(t, tc.env, append(args, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("--print-config has no line %q:\n%s", w, grepLines(out, "admin-token")+grepLines(out, "jwt-secret"))
				}
			}
		})
	}
	// One source naming both is a mistake in that source.
	code, out := printed(t, nil, "--config", writeConfig(t, "surge.yaml", "admin-token-file: "+tokenFile+"\nadmin-token: token-in-the-file-too-0123\n"))
	if code != 2 || !strings.Contains(out, "not both") {
		t.Errorf("a file naming admin-token and admin-token-file: exit %d, %q; want 2, refused", code, out)
	}
}
