package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

// TestProbe: surge probe, the image's HEALTHCHECK, exits 0 only on a 2xx.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, `{"status":"draining"}`, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	down := "http://" + freeAddr(t) + "/healthz"
	for _, tt := range []struct {
		url      string
		code     int
		inOutput string
	}{
		{srv.URL + "/healthz", 0, "200 OK"},
		{srv.URL + "/readyz", 1, "503 Service Unavailable"},
		{down, 1, "connection refused"},
	} {
		code, stdout, stderr := runCLI(context.Background(), "probe", "--url", tt.url)
		if code != tt.code || !strings.Contains(stdout+stderr, tt.inOutput) {
			t.Errorf("probe %s: exit %d, stdout %q, stderr %q; want %d and %q", tt.url, code, stdout, stderr, tt.code, tt.inOutput)
		}
	}
	if code, _, stderr := runCLI(cancelled(), "probe", "--url", "::"); code != 1 || !oneLine(stderr) {
		t.Errorf("probe with a bad URL: exit %d, %q; want 1 (unhealthy: Docker reserves 2) and one line", code, stderr)
	}
}

// TestProbeExitsZeroOrOne: surge probe is a health check, and Docker
// reserves a HEALTHCHECK's exit code 2 ("do not use"): a URL it cannot
// parse, a misspelt flag or argument, or a bad SURGE_* value must report
// unhealthy (1), in one line, not 2.
func TestProbeExitsZeroOrOne(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		args []string
	}{
		{"unparsable URL", "", []string{"--url", "::"}},
		{"control character in URL", "", []string{"--url", "http://127.0.0.1:1/\x7f"}},
		{"unknown flag", "", []string{"--ulr", "http://127.0.0.1:1/healthz"}},
		{"bad timeout", "", []string{"--timeout", "3"}},
		{"stray argument", "", []string{"http://127.0.0.1:1/healthz"}},
		{"bad SURGE_TIMEOUT", "soon", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("SURGE_TIMEOUT", tt.env)
			}
			code, _, stderr := runCLI(cancelled(), append([]string{"probe"}, tt.args...)...)
			if code != 1 || !oneLine(stderr) {
				t.Errorf("probe %q: exit %d, stderr %q; want 1 (unhealthy) and one line", tt.args, code, stderr)
			}
		})
	}
	if code, stdout, _ := runCLI(cancelled(), "probe", "--help"); code != 0 || !strings.Contains(stdout, "Usage: surge probe") {
		t.Errorf("probe --help: exit %d, %q; want 0 and the usage", code, stdout)
	}
}

// TestProbeFollowsHTTPAddr: without --url, surge probe checks /healthz
// where serve listens as SURGE_HTTP_ADDR sets it, its wildcard host on the
// loopback. The container image's HEALTHCHECK runs it in the image's
// environment: a container given another port by SURGE_HTTP_ADDR (the
// Dockerfile's documented setting) was probed at 127.0.0.1:8080 and marked
// unhealthy while it served.
func TestProbeFollowsHTTPAddr(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	p := startConfigured(t, "--data-dir", t.TempDir())
	_, port, err := net.SplitHostPort(strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:" + port, "[::]:" + port, ":" + port, "127.0.0.1:" + port} {
		cmd := exec.Command(surgeBinary(t), "probe", "--timeout", "3s")
		cmd.Env = append(cmd.Environ(), "SURGE_HTTP_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		if want := "http://127.0.0.1:" + port + "/healthz: 200 OK"; err != nil || !strings.Contains(string(out), want) {
			t.Errorf("SURGE_HTTP_ADDR=%s surge probe: %v, %q; want exit 0 and %q", addr, err, out, want)
		}
	}
}
