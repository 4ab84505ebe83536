package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
	if code, _ := get(t, srv.base+"/v1/orders/none", signed[:len(signed)-2]+"AA"); code != http.StatusUnauthorized {
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
