package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
)

// TestSpecOpsConventions: the spec's conventions hold on the ops
// listener too (--debug-addr, and --admin-addr where the API shares it):
// a described path with another method is 405 method_not_allowed with
// Allow, and a path the routes do not describe 404 not_found, both in
// the JSON error shape. The ops listener answered every method as GET
// (DELETE /debug/stats was the stats, POST /debug/pprof/heap a profile),
// and an unknown /debug/ path with net/http's plain-text 404.
func TestSpecOpsConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := surgehttp.New(stubService{}, surgehttp.Config{AdminToken: adminToken, Logger: quietLog, Gatherer: reg})
	for name, handler := range map[string]http.Handler{"debug": h.Ops(reg, nil), "admin": h.Ops(reg, h.Admin())} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(handler)
			t.Cleanup(srv.Close)
			for _, tc := range []struct {
				method, path string
				status       int
				code, allow  string
			}{
				{"GET", "/debug/stats", 200, "", ""},
				{"HEAD", "/debug/stats", 200, "", ""},
				{"DELETE", "/debug/stats", 405, "method_not_allowed", "GET, HEAD"},
				{"POST", "/debug/pprof/heap", 405, "method_not_allowed", "GET, HEAD"},
				{"PUT", "/debug/pprof/", 405, "method_not_allowed", "GET, HEAD"},
				{"POST", "/debug/pprof/profile?seconds=1", 405, "method_not_allowed", "GET, HEAD"},
				{"GET", "/debug/pprof/symbol", 200, "", ""},
				{"POST", "/debug/pprof/symbol", 200, "", ""}, // go tool pprof posts its addresses
				{"DELETE", "/debug/pprof/symbol", 405, "method_not_allowed", "GET, HEAD, POST"},
				{"GET", "/debug/pprof/cmdline", 404, "not_found", ""},
				{"GET", "/debug/nothing", 404, "not_found", ""},
				{"GET", "/debug/", 404, "not_found", ""},
			} {
				req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+adminToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				what := tc.method + " " + tc.path
				if resp.StatusCode != tc.status {
					t.Errorf("%s: HTTP %d %s, want %d", what, resp.StatusCode, strings.TrimSpace(string(body)), tc.status)
					continue
				}
				if got := resp.Header.Get("Allow"); got != tc.allow {
					t.Errorf("%s: Allow %q, want %q", what, got, tc.allow)
				}
				if tc.code == "" {
					continue
				}
				var e api.ErrorBody
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" || json.Unmarshal(body, &e) != nil || e.Error.Code != tc.code {
					t.Errorf("%s: HTTP %d %s %q, want the JSON error %s", what, resp.StatusCode, ct, strings.TrimSpace(string(body)), tc.code)
				}
			}
		})
	}
}
