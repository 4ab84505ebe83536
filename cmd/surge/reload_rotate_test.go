package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge/servicetest"
)

// TestReloadJWTSecretRotationOverlap: an operator rotates the HS256
// secret mid-sale. With jwt-previous-secret(-file) naming the old secret,
// the buyers' tokens signed with it stay good after the SIGHUP that puts
// the new secret in force, beside the new ones, until a later reload
// drops the previous secret: then only the new secret's tokens pass.
// Without it, the SIGHUP logged every buyer out at once.
func TestReloadJWTSecretRotationOverlap(t *testing.T) {
	const secretA, secretB, secretC = "jwt-secret-A-of-at-least-32-bytes-long", "jwt-secret-B-of-at-least-32-bytes-long",
		"jwt-secret-C-of-at-least-32-bytes-long"
	dir := t.TempDir()
	cfg, current, previous := filepath.Join(dir, "surge.yaml"), filepath.Join(dir, "jwt-secret"), filepath.Join(dir, "jwt-secret.old")
	put := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(current, secretA+"\n")
	put(cfg, "jwt-secret-file: "+current+"\n")
	args := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0",
		"--admin-token", "rotation-admin-token"}
	var logBuf servicetest.Log
	srv := startReloadable(t, args, &logBuf)
	sign := func(secret string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		s, err := tok.SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tokA, tokB, tokC := sign(secretA), sign(secretB), sign(secretC)
	want := func(when string, cases map[string]int) {
		t.Helper()
		for name, status := range cases {
			tok := map[string]string{"A": tokA, "B": tokB, "C": tokC}[name]
			if got := buyerStatus(t, srv.url(), tok); got != status {
				t.Errorf("%s: the token of secret %s answers %d, want %d\n%s", when, name, got, status, logBuf.String())
			}
		}
	}
	const ok, refused = http.StatusNotFound, http.StatusUnauthorized
	want("at start", map[string]int{"A": ok, "B": refused})

	// The rotation: B signs from now on, A is still accepted.
	put(current, secretB+"\n")
	put(previous, secretA+"\n")
	put(cfg, "jwt-secret-file: "+current+"\njwt-previous-secret-file: "+previous+"\n")
	srv.reload(args)
	if strings.Contains(logBuf.String(), "config reload refused") {
		t.Fatalf("the rotation's reload was refused:\n%s", logBuf.String())
	}
	want("during the rotation", map[string]int{"A": ok, "B": ok, "C": refused})

	// The old tokens have expired: the previous secret goes.
	put(cfg, "jwt-secret-file: "+current+"\n")
	srv.reload(args)
	want("after the rotation", map[string]int{"A": refused, "B": ok, "C": refused})

	// A previous secret too short, or without a current one, is refused
	// whole: the running keys stay.
	for _, body := range []string{
		"jwt-secret-file: " + current + "\njwt-previous-secret: too-short\n",
		"jwt-previous-secret-file: " + previous + "\n",
	} {
		before := strings.Count(logBuf.String(), "config reload refused")
		put(cfg, body)
		srv.reload(args)
		if strings.Count(logBuf.String(), "config reload refused") != before+1 {
			t.Errorf("config %q was not refused:\n%s", body, logBuf.String())
		}
		want("after a refused reload", map[string]int{"A": refused, "B": ok})
	}
}
