package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testToken = "dashboard-test-admin-token"

func newTestServer(t *testing.T, cfg Config) (*Dashboard, *httptest.Server) {
	t.Helper()
	if cfg.AdminToken == "" {
		cfg.AdminToken = testToken
	}
	if cfg.Gatherer == nil {
		c := newContract(t, false)
		c.stock.WithLabelValues("phone").Set(10)
		c.remaining.WithLabelValues("phone").Set(4)
		c.purchases.WithLabelValues("phone", "reserved").Add(6)
		cfg.Gatherer = c.reg
	}
	d := New(cfg)
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })
	return d, srv
}

func do(t *testing.T, c *http.Client, method, url, token string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPageNeedsTheToken: the page and the feed answer only the admin
// token (a bearer header or the session cookie the sign-in form gets);
// a browser without either gets the sign-in form; the token is never
// echoed, nor put in a URL or the cookie.
func TestPageNeedsTheToken(t *testing.T) {
	_, srv := newTestServer(t, Config{})
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, body := do(t, plain, "GET", srv.URL+"/dashboard", "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `action="/dashboard/login"`) || !strings.Contains(body, `method="post"`) {
		t.Fatalf("GET /dashboard without credentials: %d %.200q, want 401 and the sign-in form", resp.StatusCode, body)
	}
	for _, tok := range []string{"", "wrong-token-wrong-token"} {
		if resp, _ := do(t, plain, "GET", srv.URL+"/dashboard/events", tok, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("events with token %q: %d, want 401", tok, resp.StatusCode)
		}
	}
	if resp, body := do(t, plain, "GET", srv.URL+"/dashboard", testToken, nil); resp.StatusCode != 200 || !strings.Contains(body, "dashboard.js") {
		t.Errorf("GET /dashboard with the bearer token: %d", resp.StatusCode)
	} else if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// Style and code are the same for everyone: the sign-in form uses them.
	for _, p := range []string{"/dashboard/dashboard.css", "/dashboard/dashboard.js"} {
		if resp, _ := do(t, plain, "GET", srv.URL+p, "", nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}

	// A wrong token gets the form again, with no cookie.
	resp, body = do(t, plain, "POST", srv.URL+"/dashboard/login", "", strings.NewReader("token=not-the-token"))
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 || !strings.Contains(body, "not the admin token") {
		t.Fatalf("sign-in with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp, body = do(t, plain, "POST", srv.URL+"/dashboard/login", "", strings.NewReader(url.Values{"token": {testToken}}.Encode()))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("sign-in cookies: %v", cs)
	}
	c := cs[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/dashboard" || c.MaxAge <= 0 ||
		strings.Contains(c.Value, testToken) || strings.Contains(body, testToken) || strings.Contains(resp.Header.Get("Location"), testToken) {
		t.Errorf("session cookie %+v", c)
	}

	// A browser: sign in, follow the redirect, read the feed.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar}
	resp, body = do(t, browser, "POST", srv.URL+"/dashboard/login", "", strings.NewReader("token="+testToken))
	if resp.StatusCode != 200 || !strings.Contains(body, "dashboard.js") {
		t.Fatalf("after sign-in: %d %.100q", resp.StatusCode, body)
	}
	snap := firstSnapshot(t, browser, srv.URL, "")
	if len(snap.Sales) != 1 || snap.Sales[0].ID != "phone" || *snap.Sales[0].Remaining != 4 {
		t.Errorf("snapshot: %+v", snap)
	}

	// A forged, tampered or expired cookie is refused.
	s := newSessions(testToken)
	now := time.Now()
	good := s.cookie(now, false).Value
	for _, v := range []string{"v1.99999999999.AAAA", good + "x", strings.Replace(good, "v1.", "v1.9", 1),
		newSessions("another-admin-token-entirely").cookie(now, false).Value} {
		if s.valid(v, now) {
			t.Errorf("cookie %q accepted", v)
		}
	}
	if !s.valid(good, now) || s.valid(good, now.Add(sessionTTL+time.Second)) {
		t.Errorf("session validity around its expiry is wrong")
	}
}

// firstSnapshot opens the feed and returns its first snapshot.
func firstSnapshot(t *testing.T, c *http.Client, base, token string) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/dashboard/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var s Snapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				t.Fatalf("snapshot %q: %v", data, err)
			}
			return s
		}
	}
	t.Fatalf("no snapshot: %v", sc.Err())
	return Snapshot{}
}

// TestStreamsBounded: beyond MaxStreams a feed is refused with 429; a
// stream ends when its client goes (its slot is free again) and at
// Close, which also refuses new ones.
func TestStreamsBounded(t *testing.T) {
	d, srv := newTestServer(t, Config{MaxStreams: 1, Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	events := 0
	for events < 3 { // a snapshot every interval
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: snapshot") {
			events++
		}
	}
	if resp, _ := do(t, http.DefaultClient, "GET", srv.URL+"/dashboard/events", testToken, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a stream over the bound: %d, want 429 with Retry-After", resp.StatusCode)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool { return len(d.slots) == 0 }, "the slot of a stream whose client went")

	req, _ = http.NewRequest("GET", srv.URL+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
	d.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a stream outlived Close")
	}
	if resp, _ := do(t, http.DefaultClient, "GET", srv.URL+"/dashboard/events", testToken, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: %d, want 503", resp.StatusCode)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnknownPathsAndMethods answer in the API's JSON error shape.
func TestUnknownPathsAndMethods(t *testing.T) {
	_, srv := newTestServer(t, Config{})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/dashboard/nothing", http.StatusNotFound},
		{"POST", "/dashboard", http.StatusMethodNotAllowed},
		{"GET", "/dashboard/login", http.StatusMethodNotAllowed},
	} {
		resp, body := do(t, http.DefaultClient, tc.method, srv.URL+tc.path, testToken, nil)
		if resp.StatusCode != tc.status || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s %s: %d %q, want %d in JSON", tc.method, tc.path, resp.StatusCode, body, tc.status)
		}
	}
}

// TestNoTokenNoDashboard: without an admin token nothing is authorized,
// the empty token included.
func TestNoTokenNoDashboard(t *testing.T) {
	d := New(Config{Gatherer: newContract(t, false).reg})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })
	if resp, _ := do(t, http.DefaultClient, "POST", srv.URL+"/dashboard/login", "", strings.NewReader("token=")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sign-in with the empty token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer ")
	if resp, _ := do(t, http.DefaultClient, "GET", srv.URL+"/dashboard/events", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without a token: %d, want 401", resp.StatusCode)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("events with an empty bearer token: %d, want 401", resp.StatusCode)
	}
	if d.session.Load().valid(newSessions("").cookie(time.Now(), false).Value, time.Now()) {
		t.Error("a session of the empty token is valid")
	}
}

// TestStreamHEADEnds: HEAD of the feed answers what GET would, without
// its body, and ends there: net/http discards a HEAD's body, so a feed
// followed unseen would hold its slot (and its connection) until the
// stream's age, refusing the next real dashboard 429.
func TestStreamHEADEnds(t *testing.T) {
	d, srv := newTestServer(t, Config{MaxStreams: 1, Interval: 20 * time.Millisecond})
	resp, _ := do(t, http.DefaultClient, "HEAD", srv.URL+"/dashboard/events", testToken, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HEAD of the feed: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitFor(t, func() bool { return len(d.slots) == 0 }, "the slot of a HEAD of the feed")
	if resp, _ := do(t, http.DefaultClient, "HEAD", srv.URL+"/dashboard/events", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HEAD of the feed without a session: %d, want 401 as GET", resp.StatusCode)
	}
}

// TestSessionCookieSecureBehindTLSProxy: Surge serves no TLS itself, so a
// dashboard reached over HTTPS is behind a proxy that terminated it; the
// session cookie must still be Secure then (the proxy says so in
// X-Forwarded-Proto or Forwarded), and stays without it over plain HTTP.
func TestSessionCookieSecureBehindTLSProxy(t *testing.T) {
	_, srv := newTestServer(t, Config{})
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		header, value string
		secure        bool
	}{
		{"", "", false},
		{"X-Forwarded-Proto", "http", false},
		{"X-Forwarded-Proto", "https", true},
		{"X-Forwarded-Proto", "HTTPS, http", true},
		{"Forwarded", `for=192.0.2.60;proto=https;by=203.0.113.43`, true},
		{"Forwarded", `for=192.0.2.60;proto=http`, false},
	} {
		req, err := http.NewRequest("POST", srv.URL+"/dashboard/login", strings.NewReader(url.Values{"token": {testToken}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.header != "" {
			req.Header.Set(tc.header, tc.value)
		}
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Cookies()
		if resp.StatusCode != http.StatusSeeOther || len(cs) != 1 {
			t.Fatalf("sign-in with %s: %q: %d, cookies %v", tc.header, tc.value, resp.StatusCode, cs)
		}
		if cs[0].Secure != tc.secure {
			t.Errorf("sign-in with %s: %q: cookie Secure=%v, want %v", tc.header, tc.value, cs[0].Secure, tc.secure)
		}
	}
}
