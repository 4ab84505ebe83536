package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgehq/surge/servicetest"
)

// TestReloadAdminTokenRotationEveryListener: a rotated admin token
// (admin-token-file rewritten, SIGHUP) is refused from the next request on
// every listener that takes it (the admin listener's API and pprof, the
// debug listener, the dashboard's bearer check and sign-in form), the
// dashboard sessions signed under it end, and the new token works
// everywhere at once.
func TestReloadAdminTokenRotationEveryListener(t *testing.T) {
	const tokA, tokB = "admin-token-A-0123456789", "admin-token-B-0123456789"
	dir := t.TempDir()
	cfg, tokFile := filepath.Join(dir, "surge.yaml"), filepath.Join(dir, "admin-token")
	put := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(tokFile, tokA+"\n")
	put(cfg, "admin-token-file: "+tokFile+"\ninsecure-user-header: true\n")
	adminAddr, debugAddr := freeAddr(t), freeAddr(t)
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0",
		"--admin-addr", adminAddr, "--debug-addr", debugAddr}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	admin, debug := "http://"+adminAddr, "http://"+debugAddr
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, u, token string, cookie *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, u, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	signIn := func(token string) (int, *http.Cookie) {
		t.Helper()
		resp, err := noRedirect.PostForm(admin+"/dashboard/login", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			return resp.StatusCode, c
		}
		return resp.StatusCode, nil
	}
	// Each place that takes the admin token: the status it answers the
	// token given.
	places := []struct {
		name, method, url string
	}{
		{"admin listener API", http.MethodGet, admin + "/v1/sales/no-such-sale/orders"},
		{"admin listener pprof", http.MethodGet, admin + "/debug/stats"},
		{"debug listener", http.MethodGet, debug + "/debug/stats"},
		{"dashboard, bearer", http.MethodGet, admin + "/dashboard/events"},
	}
	check := func(when, token string, good bool) {
		t.Helper()
		for _, p := range places {
			got := do(p.method, p.url, token, nil).StatusCode
			if good == (got == http.StatusUnauthorized) {
				t.Errorf("%s: %s with token %s answers %d (good: %v)", when, p.name, token[:len("admin-token-A")], got, good)
			}
		}
	}
	status, session := signIn(tokA)
	if status != http.StatusSeeOther || session == nil {
		t.Fatalf("sign-in with the admin token: %d, cookie %v", status, session)
	}
	if got := do(http.MethodGet, admin+"/dashboard", "", session).StatusCode; got != http.StatusOK {
		t.Fatalf("the dashboard with a session: %d, want 200", got)
	}
	check("before the rotation", tokA, true)
	check("before the rotation", tokB, false)

	put(tokFile, tokB+"\n")
	srv.reload(args)
	if strings.Contains(logBuf.String(), "config reload refused") {
		t.Fatalf("the rotation's reload was refused:\n%s", logBuf.String())
	}
	check("after the rotation", tokA, false)
	check("after the rotation", tokB, true)
	if got := do(http.MethodGet, admin+"/dashboard", "", session).StatusCode; got != http.StatusUnauthorized {
		t.Errorf("the dashboard with a session of the old token: %d, want 401", got)
	}
	if status, _ := signIn(tokA); status != http.StatusUnauthorized {
		t.Errorf("sign-in with the old token: %d, want 401", status)
	}
	if status, c := signIn(tokB); status != http.StatusSeeOther || c == nil {
		t.Errorf("sign-in with the new token: %d, cookie %v", status, c)
	}
}
