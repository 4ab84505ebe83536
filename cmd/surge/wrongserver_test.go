package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

// TestWrongServerNamesTheFlag: an operator steering a live sale whose
// --server names something else than surge serve's API (its --debug-addr,
// the API under a path, another web server, a proxy whose Surge is down)
// got the foreign answer alone: "not_found (HTTP 404): no such endpoint",
// or a web server's HTML page over a dozen lines, naming no flag, though
// the README promises that a client command's errors name the flag to fix.
// Each must be one line that says the answer is not Surge's API and names
// --server.
func TestWrongServerNamesTheFlag(t *testing.T) {
	bin := surgeBinary(t)
	debug := freeAddr(t)
	const token = "wrong-server-test-token"
	p := startProc(t, t.TempDir(), token, "--debug-addr", debug)
	page := func(status int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = w.Write([]byte("<html>\n<head><title>" + http.StatusText(status) + "</title></head>\n<body>\n<center><h1>" +
				http.StatusText(status) + "</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	const proxy = "a proxy whose Surge is down"
	for _, tc := range []struct{ name, server, want string }{
		{"surge serve's --debug-addr", "http://" + debug, "--server"},
		{"the API under a path", p.base + "/api", "--server"},
		{"another web server", page(http.StatusNotFound).URL, "--server"},
		{"another web server refusing the method", page(http.StatusMethodNotAllowed).URL, "--server"},
		{"another web server lacking the method", page(http.StatusNotImplemented).URL, "--server"},
		{proxy, page(http.StatusBadGateway).URL, proxy},
	} {
		for _, args := range [][]string{
			{"sale", "pause", "phone"},
			{"sale", "update", "phone", "--stock", "5"},
			{"sale", "get", "phone"},
			{"order", "get", "o_missing"},
		} {
			cmd := exec.Command(bin, append(args, "--server", tc.server, "--admin-token", token)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			msg := stderr.String()
			if code != 1 || stdout.Len() != 0 || !oneLine(msg) || !strings.Contains(msg, "not Surge's API") || !strings.Contains(msg, tc.want) ||
				!strings.Contains(msg, "--server") || (tc.want != proxy) == strings.Contains(msg, proxy) {
				t.Errorf("surge %s --server %s (%s): exit %d, stderr %q; want exit 1 and one line saying the answer is not Surge's API, naming %s",
					strings.Join(args, " "), tc.server, tc.name, code, msg, tc.want)
			}
		}
	}
}
