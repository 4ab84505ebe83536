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
	checkSources(t, func(out string) string { return grepLines(out, "admin-token") + grepLines(out, "jwt-secret") }, []sourcesCase{
		{"variable over the file's -file", "admin-token-file: " + tokenFile + "\n",
			[]string{"SURGE_ADMIN_TOKEN=token-from-the-env-0123"}, nil,
			[]string{`admin-token: "xxxxx" # env`, `admin-token-file: "" # env`}},
		{"flag's -file over the file's secret", "jwt-secret: " + strings.Repeat("s", 32) + "\n",
			nil, []string{"--jwt-secret-file", jwtFile},
			[]string{`jwt-secret: "" # flag`, `jwt-secret-file: "` + jwtFile + `" # flag`}},
		{"flag over the variable's -file", "",
			[]string{"SURGE_ADMIN_TOKEN_FILE=" + tokenFile}, []string{"--admin-token", "token-from-the-flag-0123"},
			[]string{`admin-token: "xxxxx" # flag`, `admin-token-file: "" # flag`}},
	})
	// One source naming both is a mistake in that source.
	code, out := printedConfig(t, nil, "--config", writeConfig(t, "surge.yaml", "admin-token-file: "+tokenFile+"\nadmin-token: token-in-the-file-too-0123\n"))
	if code != 2 || !strings.Contains(out, "not both") {
		t.Errorf("a file naming admin-token and admin-token-file: exit %d, %q; want 2, refused", code, out)
	}
}

// sourcesCase is a setting given in some of the three sources (a config
// file's text, SURGE_* variables, flags) and the lines --print-config must
// then show.
type sourcesCase struct {
	name string
	file string
	env  []string
	args []string
	want []string // lines of --print-config
}

// checkSources runs each case through printedConfig as a subtest; show
// picks the lines worth printing when a wanted one is missing.
func checkSources(t *testing.T, show func(out string) string, cases []sourcesCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				args = append(args, "--config", writeConfig(t, "surge.yaml", tc.file))
			}
			code, out := printedConfig(t, tc.env, append(args, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, want 0: %s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("--print-config has no line %q:\n%s", w, show(out))
				}
			}
		})
	}
}

// printedConfig runs the built surge serve --print-config with args, the
// SURGE_* variables of env and no others, and returns its exit status and
// output (stdout and stderr).
func printedConfig(t *testing.T, env []string, args ...string) (int, string) {
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

// TestJWKSSourceOverridesAcrossSources: the buyers' key set comes from a
// JWKS file or a URL (--jwks-url is "instead of --jwks-file"), and the
// sources override one another (docs/configuration.md), yet a config
// file naming jwks-file with SURGE_JWKS_URL set in the environment (or
// the other way round, or a flag over either) refused the start, "give
// --jwks-url or --jwks-file, not both", naming two flags nobody had given,
// as a secret and its -file did (TestSecretOverridesFileAcrossSources).
// The later source wins, either key; both in one source are still refused.
func TestJWKSSourceOverridesAcrossSources(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	_, doc := ecKeySet(t)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	const keys = "https://keys.example/.well-known/jwks.json"
	checkSources(t, func(out string) string { return grepLines(out, "jwks-") }, []sourcesCase{
		{"variable's url over the file's file", "jwks-file: " + jwks + "\n",
			[]string{"SURGE_JWKS_URL=" + keys}, nil,
			[]string{`jwks-url: "` + keys + `" # env`, `jwks-file: "" # env`}},
		{"variable's file over the file's url", "jwks-url: " + keys + "\n",
			[]string{"SURGE_JWKS_FILE=" + jwks}, nil,
			[]string{`jwks-file: "` + jwks + `" # env`, `jwks-url: "" # env`}},
		{"flag's file over the variable's url", "",
			[]string{"SURGE_JWKS_URL=" + keys}, []string{"--jwks-file", jwks},
			[]string{`jwks-file: "` + jwks + `" # flag`, `jwks-url: "" # flag`}},
		{"flag's url over the file's file", "jwks-file: " + jwks + "\n",
			nil, []string{"--jwks-url", keys},
			[]string{`jwks-url: "` + keys + `" # flag`, `jwks-file: "" # flag`}},
	})
	// One source naming both is a mistake in that source.
	for _, src := range []struct {
		where, file string
		env, args   []string
	}{
		{where: "file", file: "jwks-file: " + jwks + "\njwks-url: " + keys + "\n"},
		{where: "environment", env: []string{"SURGE_JWKS_FILE=" + jwks, "SURGE_JWKS_URL=" + keys}},
		{where: "flags", args: []string{"--jwks-file", jwks, "--jwks-url", keys}},
	} {
		args := src.args
		if src.file != "" {
			args = append(args, "--config", writeConfig(t, "surge.yaml", src.file))
		}
		if code, out := printedConfig(t, src.env, args...); code != 2 || !strings.Contains(out, "not both") {
			t.Errorf("jwks-file and jwks-url both in the %s: exit %d, %q; want 2, refused", src.where, code, out)
		}
	}
}
