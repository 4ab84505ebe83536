package dashboard

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTwoAuthorizationHeadersRefused: the API refuses a request with two
// Authorization headers (http's oneAuthorization): the first need not be
// the one a gateway in front checked or added. The dashboard's own check
// read the first and served the page and the feed to it.
func TestTwoAuthorizationHeadersRefused(t *testing.T) {
	d, srv := newTestServer(t, Config{MaxStreams: 1, Interval: 20 * time.Millisecond})
	for _, tc := range []struct {
		name, method, path string
		auth               []string
	}{
		{"page, admin first", "GET", "/dashboard", []string{"Bearer " + testToken, "Bearer gateway-token"}},
		{"page, admin second", "GET", "/dashboard", []string{"Bearer gateway-token", "Bearer " + testToken}},
		{"page, admin twice", "GET", "/dashboard", []string{"Bearer " + testToken, "Bearer " + testToken}},
		{"feed, admin first", "HEAD", "/dashboard/events", []string{"Bearer " + testToken, "Basic Z2F0ZXdheTp4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Authorization"] = tc.auth
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s with %d Authorization headers: %d, want 401 as the API answers", tc.method, tc.path, len(tc.auth), resp.StatusCode)
			}
			if tc.method == "GET" && !strings.Contains(string(body), "one Authorization header") {
				t.Errorf("body %q, want it to say to send one Authorization header", body)
			}
		})
	}
	// The feed's slot of a refused request is never taken.
	waitFor(t, func() bool { return len(d.slots) == 0 }, "no feed open")
}
