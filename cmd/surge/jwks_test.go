package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge/internal/testtoken"
)

// TestServeJWKSURL: with --jwks-url, a buyer's ES256 token signed by a key
// of the fetched set is accepted; a key server that is down, or --jwks-url
// beside --jwks-file, refuses the start with one line.
func TestServeJWKSURL(t *testing.T) {
	key, doc := ecKeySet(t)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(doc) }))
	defer keys.Close()

	const admin = "jwks-admin-token-0123"
	srv := startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", admin,
		"--jwks-url", keys.URL, "--log-level", "error")
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.base+"/v1/orders/none", signed); code != http.StatusNotFound {
		t.Errorf("buyer with an ES256 token of the fetched set: %d %q, want 404 order_not_found", code, body)
	}
	if code, _ := get(t, srv.base+"/v1/orders/none", testtoken.BrokenSignature(signed)); code != http.StatusUnauthorized {
		t.Errorf("a token with a broken signature: %d, want 401", code)
	}

	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"key server down", []string{"--jwks-url", down.URL}, "--jwks-url " + down.URL},
		{"url and file", []string{"--jwks-url", keys.URL, "--jwks-file", file}, "not both"},
		{"zero refresh", []string{"--jwks-url", keys.URL, "--jwks-refresh", "0s"}, "--jwks-refresh"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", admin, "--log-level", "error"}, c.args...)
		code, _, stderr := runCLI(ctx, args...)
		cancel()
		if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line with %q", c.name, code, stderr, c.want)
		}
	}
}

// ecKeySet is a new P-256 key and the JWKS that publishes it as kid k1.
func ecKeySet(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	doc, err := json.Marshal(map[string]any{"keys": []map[string]any{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
		"x": enc.EncodeToString(pub[1:33]), "y": enc.EncodeToString(pub[33:])}}})
	if err != nil {
		t.Fatal(err)
	}
	return key, doc
}

// TestJWKSRefreshMinimum: --jwks-refresh below 30s would have the key
// server fetched as often as asked (1ms: a thousand requests a second
// from every node). A start refuses it (exit 2, one line naming the flag
// and the minimum), and so does a reload (the config file it reads again
// is checked as a start's).
func TestJWKSRefreshMinimum(t *testing.T) {
	_, doc := ecKeySet(t)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(doc) }))
	defer keys.Close()
	for _, refresh := range []string{"1ns", "1ms", "29s"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code, _, stderr := runCLI(ctx, "serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", "jwks-refresh-admin-token",
			"--log-level", "error", "--jwks-url", keys.URL, "--jwks-refresh", refresh)
		cancel()
		if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, "--jwks-refresh") || !strings.Contains(stderr, "30s") {
			t.Errorf("serve --jwks-refresh %s: exit %d, stderr %q; want a refusal, exit 2 and one line naming --jwks-refresh and its minimum 30s", refresh, code, stderr)
		}
	}
	// The reload's path: the config file read again, as reload does.
	cfg := filepath.Join(t.TempDir(), "surge.yaml")
	if err := os.WriteFile(cfg, []byte("jwks-url: "+keys.URL+"\njwks-refresh: 1ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadServeConfig([]string{"--config", cfg, "--data-dir", t.TempDir()}, io.Discard); err == nil || !strings.Contains(err.Error(), "--jwks-refresh") {
		t.Errorf("a config file with jwks-refresh 1ms, as a reload reads it: %v; want it refused, naming --jwks-refresh", err)
	}
	// The default and the minimum itself start.
	for _, refresh := range []string{"30s", "5m"} {
		if _, err := loadServeConfig([]string{"--data-dir", t.TempDir(), "--jwks-url", keys.URL, "--jwks-refresh", refresh}, io.Discard); err != nil {
			t.Errorf("--jwks-refresh %s: %v; want it accepted", refresh, err)
		}
	}
}

// TestJWKSURLPlainHTTPWarns: keys fetched over plain HTTP from another
// host can be swapped by anyone on the path, who can then sign tokens for
// any buyer. The start (and a reload) logs a warning naming the risk; a
// key server on the loopback, or over HTTPS, draws none.
func TestJWKSURLPlainHTTPWarns(t *testing.T) {
	for _, c := range []struct {
		url  string
		warn bool
	}{
		{"http://keys.example.com/.well-known/jwks.json", true},
		{"http://10.0.0.7:8080/jwks", true},
		{"HTTP://keys.example.com/jwks", true},
		{"https://keys.example.com/jwks", false},
		{"http://127.0.0.1:8080/jwks", false},
		{"http://localhost:8080/jwks", false},
		{"http://[::1]:8080/jwks", false},
	} {
		var buf bytes.Buffer
		c2 := serveConfig{jwksURL: c.url}
		c2.warnBuyerAuth(slog.New(slog.NewTextHandler(&buf, nil)))
		got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "--jwks-url") && strings.Contains(buf.String(), "plain HTTP")
		if got != c.warn {
			t.Errorf("--jwks-url %s: warned %v, want %v (a WARN naming --jwks-url and plain HTTP for a non-loopback http:// URL); the log:\n%s", c.url, got, c.warn, buf.String())
		}
	}
}
