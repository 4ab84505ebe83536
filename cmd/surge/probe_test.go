package main

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	if code, _, stderr := runCLI(cancelled(), "probe", "--url", "::"); code != 2 || !oneLine(stderr) {
		t.Errorf("probe with a bad URL: exit %d, %q; want a usage error", code, stderr)
	}
}
