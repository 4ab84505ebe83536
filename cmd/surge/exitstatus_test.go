package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// runBinary runs the built surge with args and no SURGE_* variable, and
// returns its exit status and output.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(surgeBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SURGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestSaleSteerExitStatus holds surge sale's exit statuses to what
// `surge sale --help` and the README say, on the built binary: 0 done,
// the sale printed; 2 a command line refused before anything is sent; 1
// anything else (the server's refusal, no server, no or a wrong admin
// token), with one line on stderr. A refusal leaves the sale as it was.
func TestSaleSteerExitStatus(t *testing.T) {
	const token = "exit-status-test-token"
	p := startProc(t, t.TempDir(), token)
	ctx := context.Background()
	c := client.New(p.base, token)
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("phone"), Name: new("Phone"), Stock: new(int64(10))}); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--server", p.base, "--admin-token", token}
	for _, tc := range []struct {
		want int
		args []string
	}{
		{0, []string{"sale", "pause", "phone"}},
		{0, []string{"sale", "pause", "phone"}}, // again: the same answer
		{0, []string{"sale", "resume", "phone"}},
		{2, []string{"sale", "pause"}},
		{2, []string{"sale", "pause", "phone", "extra"}},
		{2, []string{"sale", "update", "phone"}},
		{2, []string{"sale", "update", "phone", "--stock", "many"}},
		{2, []string{"sale", "update", "phone", "--ends-at", "tomorrow"}},
		{2, []string{"sale", "frobnicate", "phone"}},
		{1, []string{"sale", "pause", "nosuch"}},
		{1, []string{"sale", "update", "phone", "--stock", "0"}},
		{1, []string{"sale", "update", "phone", "--per-user-limit", "11"}},
	} {
		code, stdout, stderr := runBinary(t, append(tc.args, auth...)...)
		if code != tc.want || (code != 0) != (stdout == "") || (code != 0 && !oneLine(stderr)) {
			t.Errorf("surge %s: exit %d, stdout %q, stderr %q; want exit %d (and one line on stderr when not 0)",
				strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
	for _, args := range [][]string{
		{"sale", "pause", "phone", "--server", p.base},
		{"sale", "pause", "phone", "--server", p.base, "--admin-token", "not-the-admin-token"},
		{"sale", "pause", "phone", "--server", "http://" + freeAddr(t), "--admin-token", token},
	} {
		if code, _, stderr := runBinary(t, args...); code != 1 || !oneLine(stderr) {
			t.Errorf("surge %s: exit %d, stderr %q; want exit 1 and one line", strings.Join(args, " "), code, stderr)
		}
	}
	if s, err := c.Sale(ctx, "phone"); err != nil || s.Status != "live" || s.Stock != 10 || s.PerUserLimit != 1 {
		t.Errorf("the sale after the refusals: %+v, %v; want it live as made", s, err)
	}
}

// TestNoAdminTokenExitsOne: the README gives the client commands' exit
// statuses: 2 for a command line refused, 1 for "no or a wrong admin
// token". surge sale and surge order exit 1 without a token, and surge
// bench exits 1 for a wrong one, but exited 2 for none, as for a bad flag:
// a script telling a command line to fix from a credential to supply read
// the same missing token two ways. On the built binary, every client
// command that needs the token exits 1 without one, with one line naming
// --admin-token and SURGE_ADMIN_TOKEN, and sends nothing (no server
// listens at the address).
func TestNoAdminTokenExitsOne(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	server := "http://" + freeAddr(t)
	for _, args := range [][]string{
		{"sale", "create", "--name", "Drop", "--stock", "5"},
		{"sale", "pause", "drop"},
		{"order", "get", "o_1"},
		{"bench", "--stock", "5", "--users", "10"},
		{"bench", "--sale", "drop", "--users", "10"}, // verifies against the admin export
	} {
		code, stdout, stderr := runBinary(t, append(args, "--server", server)...)
		if code != 1 || stdout != "" || !oneLine(stderr) || !strings.Contains(stderr, "no admin token: pass --admin-token or set SURGE_ADMIN_TOKEN") {
			t.Errorf("surge %s without an admin token: exit %d, stdout %q, stderr %q; want exit 1 and one line naming --admin-token and SURGE_ADMIN_TOKEN",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
}
