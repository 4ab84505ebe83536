package http_test

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	surgehttp "github.com/surgehq/surge/http"
)

// noService is a Service whose every method panics: the dashboard's
// routes never reach the pipeline.
type noService struct{ surgehttp.Service }

// TestDashboardRoutes: the dashboard is where /metrics is, with the same
// protection: the admin token on the full API, hidden (404) on the public
// API of a split deployment, absent without a registry; CloseStreams ends
// its streams.
func TestDashboardRoutes(t *testing.T) {
	const token = "dashboard-routes-admin-token"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	full := surgehttp.New(noService{}, surgehttp.Config{AdminToken: token, Gatherer: prometheus.NewRegistry(), Logger: quiet})
	srv := httptest.NewServer(full)
	t.Cleanup(srv.Close)
	public := httptest.NewServer(full.Public())
	t.Cleanup(public.Close)
	bare := httptest.NewServer(surgehttp.New(noService{}, surgehttp.Config{AdminToken: token, Logger: quiet}))
	t.Cleanup(bare.Close)

	get := func(base, path, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	status := func(base, path, tok string) int {
		resp := get(base, path, tok)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		base, path, token string
		want              int
	}{
		{srv.URL, "/dashboard", "", http.StatusUnauthorized}, // the sign-in form
		{srv.URL, "/dashboard", "not-the-admin-token", http.StatusUnauthorized},
		{srv.URL, "/dashboard", token, http.StatusOK},
		{srv.URL, "/dashboard/events", "", http.StatusUnauthorized},
		{public.URL, "/dashboard", token, http.StatusNotFound},
		{public.URL, "/dashboard/events", token, http.StatusNotFound},
		{public.URL, "/dashboard/dashboard.js", "", http.StatusNotFound},
		{bare.URL, "/dashboard", token, http.StatusNotFound},
	} {
		if got := status(tc.base, tc.path, tc.token); got != tc.want {
			t.Errorf("GET %s (token %q) on %s: %d, want %d", tc.path, tc.token, tc.base, got, tc.want)
		}
	}

	resp := get(srv.URL, "/dashboard/events", token)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events with the admin token: %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no snapshot: %v", err)
		}
		if strings.HasPrefix(line, "event: snapshot") {
			break
		}
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(done) }()
	full.CloseStreams()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the dashboard stream outlived CloseStreams")
	}
}
