package main

import (
	"strings"
	"testing"
)

// TestAdminProbeNotAPublicListener: the probe that tells the public
// listener of serve --admin-addr from a wrong token must not call every
// address that hides the order export a public listener. A server with
// no --admin-addr at all, whose --debug-addr (pprof only) an operator
// took for the admin address, or whose --server carries a wrong path,
// answers every API path 404 not_found, the export included: the CLI
// said the address "serves the public API only" and that "surge serve
// runs with --admin-addr", neither true, sending the operator after an
// admin address that does not exist. It must say what the server said.
func TestAdminProbeNotAPublicListener(t *testing.T) {
	debug := freeAddr(t)
	ctx, c := cliServer(t, "--debug-addr", debug)
	for _, tc := range []struct{ name, server string }{
		{"the --debug-addr address", "http://" + debug},
		{"the API address under a wrong path", c.BaseURL + "/api"},
	} {
		for _, args := range [][]string{
			{"sale", "pause", "probe-x"},
			{"order", "cancel", "o_missing"},
		} {
			code, stdout, stderr := runCLI(ctx, append(args, "--server", tc.server)...)
			if code != 1 || stdout != "" || !oneLine(stderr) || strings.Contains(stderr, "not an admin listener") || strings.Contains(stderr, "runs with --admin-addr") {
				t.Errorf("surge %s --server %s (%s; the server runs without --admin-addr): exit %d, stderr %q; want exit 1 and the server's answer, not a claim that it is the public listener of a server run with --admin-addr",
					strings.Join(args, " "), tc.server, tc.name, code, stderr)
			}
		}
	}
}
