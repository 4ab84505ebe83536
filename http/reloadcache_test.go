package http_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
)

// TestApplyKeepsTokenCacheWhenKeysUnchanged: a reload (Apply, which SIGHUP
// calls) that leaves the buyer keys as they were keeps the cache of
// verified tokens, so a reload in the middle of a spike does not make
// every buyer's next request pay a full verification at once; a reload
// that changes the keys (secret, key set, issuer, audience) empties it,
// so a token of the old keys is refused from the next request.
func TestApplyKeepsTokenCacheWhenKeysUnchanged(t *testing.T) {
	keys := surgehttp.LoadTestKeys(t)
	reparsed := func() *surgehttp.JWKS {
		ks, err := surgehttp.ParseJWKS(keys.JWKSJSON) // a new set, the same keys
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	base := surgehttp.Config{AdminToken: adminToken, JWTSecret: jwtSecret,
		BuyerAuth: surgehttp.BuyerAuth{JWKS: keys.JWKS, Issuer: "iss-1", Audience: "aud-1"}}
	otherSecret := []byte("fedcba9876543210fedcba9876543210")
	for _, c := range []struct {
		name string
		edit func(*surgehttp.Config)
		kept bool
		want int // the status after a reload that changed the keys
	}{
		{"nothing changed", func(*surgehttp.Config) {}, true, 0},
		{"the same secret, read again", func(c *surgehttp.Config) { c.JWTSecret = bytes.Clone(jwtSecret) }, true, 0},
		{"the same key set, read again", func(c *surgehttp.Config) { c.BuyerAuth.JWKS = reparsed() }, true, 0},
		{"another admin token", func(c *surgehttp.Config) { c.AdminToken = "another-admin-token" }, true, 0},
		{"the user header turned on", func(c *surgehttp.Config) { c.InsecureUserHeader = true }, true, 0},
		{"another secret", func(c *surgehttp.Config) { c.JWTSecret = otherSecret }, false, http.StatusUnauthorized},
		// The HS256 token is still good, but checked again under the new keys.
		{"no key set", func(c *surgehttp.Config) { c.BuyerAuth.JWKS = nil }, false, http.StatusNotFound},
		{"another issuer", func(c *surgehttp.Config) { c.BuyerAuth.Issuer = "iss-2" }, false, http.StatusUnauthorized},
		{"another audience", func(c *surgehttp.Config) { c.BuyerAuth.Audience = "aud-2" }, false, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.handler.Apply(base)
			tok := testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret, jwt.MapClaims{"sub": "alice",
				"iss": "iss-1", "aud": "aud-1", "exp": time.Now().Add(time.Hour).Unix()})
			read := func() int { return e.do(t, "GET", "/v1/orders/no-such-order", "", bearerAuth(tok)).status }
			if got := read(); got != http.StatusNotFound {
				t.Fatalf("before the reload: %d, want 404 (the buyer's token accepted)", got)
			}
			before := e.handler.TokenChecks()
			next := base
			c.edit(&next)
			e.handler.Apply(next)
			got := read()
			after := e.handler.TokenChecks()
			if c.kept {
				if got != http.StatusNotFound {
					t.Fatalf("after the reload: %d, want 404", got)
				}
				if after != before {
					t.Fatalf("token checks %+v after the reload, were %+v: the keys did not change, "+
						"yet the token was verified again (the cache was emptied)", after, before)
				}
				return
			}
			if got != c.want {
				t.Fatalf("after the reload: %d, want %d", got, c.want)
			}
			if after.Accepted+after.Refused != before.Accepted+before.Refused+1 {
				t.Fatalf("token checks %+v after the reload, were %+v: the keys changed, "+
					"yet the token was answered from the cache", after, before)
			}
		})
	}
}

// TestJWTPreviousSecret: during a rotation the tokens of the previous
// HS256 secret are accepted beside the current one's, and no other; a
// previous secret without a current one accepts nothing.
func TestJWTPreviousSecret(t *testing.T) {
	cur, prev, other := []byte("fedcba9876543210fedcba9876543210"), jwtSecret, []byte("another-secret-of-32-bytes-length")
	sign := func(secret []byte) string {
		return testtoken.Sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	}
	for _, c := range []struct {
		name      string
		cfg       surgehttp.Config
		cur, prev int // statuses of a buyer's read with a token of each
	}{
		{"rotation", surgehttp.Config{AdminToken: adminToken, JWTSecret: cur, JWTPreviousSecret: prev}, http.StatusNotFound, http.StatusNotFound},
		{"rotation done", surgehttp.Config{AdminToken: adminToken, JWTSecret: cur}, http.StatusNotFound, http.StatusUnauthorized},
		{"previous alone", surgehttp.Config{AdminToken: adminToken, JWTPreviousSecret: prev}, http.StatusUnauthorized, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.handler.Apply(c.cfg)
			for _, k := range []struct {
				tok  string
				want int
			}{{sign(cur), c.cur}, {sign(prev), c.prev}, {sign(other), http.StatusUnauthorized}} {
				for range 2 { // the second from the cache
					if r := e.do(t, "GET", "/v1/orders/no-such-order", "", bearerAuth(k.tok)); r.status != k.want {
						t.Fatalf("%d, want %d: %v", r.status, k.want, r)
					}
				}
			}
		})
	}
}
