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
