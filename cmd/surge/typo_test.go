package main

import (
	"strings"
	"testing"
)

// TestTypoSuggests: a new user's most likely mistake is a misspelt flag or
// command; the one-line refusal names the one meant, and suggests nothing
// when no name is close.
func TestTypoSuggests(t *testing.T) {
	t.Setenv("SURGE_DATA_DIR", t.TempDir())
	t.Setenv("SURGE_HTTP_ADDR", "127.0.0.1:0")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--http-adr", ":9"}, "serve: flag provided but not defined: -http-adr; did you mean --http-addr? (run 'surge serve --help')"},
		{[]string{"serve", "--insecure-user-headers"}, "did you mean --insecure-user-header?"},
		{[]string{"serve", "-data_dir", "x"}, "did you mean --data-dir?"},
		{[]string{"sale", "create", "--stok", "5"}, "sale create: flag provided but not defined: -stok; did you mean --stock?"},
		{[]string{"demo", "--user", "5"}, "did you mean --users?"},
		{[]string{"bench", "--sever", "http://x"}, "did you mean --server?"},
		{[]string{"serv"}, `unknown command "serv"; did you mean serve? (run 'surge --help')`},
		{[]string{"help", "serv"}, `did you mean serve?`},
		{[]string{"sale", "creat"}, `sale: unknown subcommand "creat"; did you mean create?`},
		{[]string{"order", "gte", "x"}, `order: unknown subcommand "gte"; did you mean get?`},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(cancelled(), tt.args...)
		if code != 2 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, tt.want) {
			t.Errorf("surge %s: exit %d, stdout %q, stderr %q; want 2 and one line with %q",
				strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	// Nothing close: no guess.
	for _, args := range [][]string{{"frobnicate"}, {"serve", "--bogus"}, {"sale", "delete"}} {
		if _, _, stderr := runCLI(cancelled(), args...); strings.Contains(stderr, "did you mean") {
			t.Errorf("surge %s: stderr %q guesses, want no guess", strings.Join(args, " "), stderr)
		}
	}
}
