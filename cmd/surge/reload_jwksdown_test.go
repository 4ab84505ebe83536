package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/servicetest"
)

// TestReloadWithKeyServerDownApplies: with --jwks-url, SIGHUP fetched the
// key set again before it applied anything, for up to 10 s, and refused the
// whole reload when the fetch failed. An operator rotating a leaked admin
// token while the identity provider has a blip could not; and the signal
// loop, held meanwhile, left a SIGTERM or an upgrade's handover waiting.
// The fetch on reload is the keys' business alone: a failed one leaves the
// keys in force (as a failed scheduled refresh does) and the rest of the
// file applies at once.
func TestReloadWithKeyServerDownApplies(t *testing.T) {
	_, doc := ecKeySet(t)
	var down atomic.Bool
	release := make(chan struct{})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			<-release // an identity provider that does not answer
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(doc)
	}))
	defer keys.Close()
	defer close(release)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "surge.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const oldToken, newToken = "reload-jwks-down-old-admin-token", "reload-jwks-down-new-admin-token"
	write("jwks-url: " + keys.URL + "\njwks-refresh: 1h\nadmin-token: " + oldToken + "\n")
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	admin := func(token string) int {
		code, _ := get(t, srv.url()+"/v1/sales/none/orders", token)
		return code
	}
	if got := admin(oldToken); got != http.StatusNotFound {
		t.Fatalf("admin read with the token in force: %d, want 404", got)
	}

	down.Store(true)
	write("jwks-url: " + keys.URL + "\njwks-refresh: 1h\nadmin-token: " + newToken + "\n")
	began := time.Now()
	srv.reload(args)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("SIGHUP held the signal loop %v waiting for the key server", took.Round(time.Millisecond))
	}
	if got := admin(newToken); got != http.StatusNotFound {
		t.Errorf("admin token rotated by SIGHUP while the key server is down: the new token answers %d, want 404\n%s",
			got, grepLines(logBuf.String(), "reload"))
	}
	if got := admin(oldToken); got != http.StatusUnauthorized {
		t.Errorf("the rotated-out admin token answers %d, want 401", got)
	}
	if strings.Contains(logBuf.String(), "config reload refused") {
		t.Errorf("the reload was refused:\n%s", grepLines(logBuf.String(), "reload"))
	}
}
