package http_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
)

// TestRefusedTokenSaysWhy: a refused buyer token gets 401 unauthenticated
// whose message says why it was refused (expired, not valid yet, wrong
// issuer, wrong audience, bad signature, algorithm not accepted), so a
// buyer's client or the operator of a misconfigured --jwt-audience can
// tell what to fix, and the message never echoes what the token sent.
func TestRefusedTokenSaysWhy(t *testing.T) {
	e := newEnv(t, envOptions{})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{"keys": []any{surgehttp.PublicJWK("ec", &ec.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := surgehttp.ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	e.handler.Apply(surgehttp.Config{AdminToken: adminToken, JWTSecret: jwtSecret,
		BuyerAuth: surgehttp.BuyerAuth{JWKS: set, Issuer: "https://id.example", Audience: "surge"}})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "iss": "https://id.example", "aud": "surge", "exp": now.Add(time.Hour).Unix()}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
				continue
			}
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	hs := func(c jwt.MapClaims) string { return testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret, c) }
	es := func(kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(ec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if r := e.do(t, "GET", "/v1/sales/s", "", bearerAuth(es("ec", claims()))); r.status != 200 {
		t.Fatalf("good ES256 token: %v", r)
	}
	good := hs(claims())
	if r := e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":1}`, bearerAuth(good), idemKey("k")); r.status != 201 {
		t.Fatalf("good token: %v", r)
	}
	parts := strings.Split(good, ".")
	for _, c := range []struct {
		name, tok string
		want      string // in the message
	}{
		{"expired", hs(claims("exp", now.Add(-time.Hour).Unix())), "expired"},
		{"not valid yet", hs(claims("nbf", now.Add(time.Hour).Unix())), "not valid yet"},
		{"no exp", hs(claims("exp", nil)), "no exp"},
		{"wrong issuer", hs(claims("iss", "https://evil.example")), "iss"},
		{"no issuer", hs(claims("iss", nil)), "iss"},
		{"wrong audience", hs(claims("aud", "other")), "aud"},
		{"wrong secret", testtoken.Sign(t, jwt.SigningMethodHS256, []byte("not the secret, but 32 bytes...."), claims()), "signature"},
		{"bad signature", parts[0] + "." + parts[1] + ".AAAA", "signature"},
		{"alg HS512", testtoken.Sign(t, jwt.SigningMethodHS512, jwtSecret, claims()), "alg"},
		{"malformed", "a.b.c", "malformed"},
		{"bad sub", hs(claims("sub", "alice smith")), "sub"},
		{"unknown kid", es("evil-kid", claims()), "kid"},
		{"expired ES256", es("ec", claims("exp", now.Add(-time.Hour).Unix())), "expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":1}`, bearerAuth(c.tok), idemKey("k2"))
			wantUnauthenticated(t, r)
			var body apiError
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if msg := body.Error.Message; !strings.Contains(msg, c.want) {
				t.Errorf("message %q does not say why (want it to mention %q)", msg, c.want)
			}
			if msg := body.Error.Message; strings.Contains(msg, "evil") || strings.Contains(msg, "HS512") {
				t.Errorf("message %q echoes the token's content", msg)
			}
		})
	}
}

// TestAdminRouteWithoutTokenSaysAdmin: an admin route called without the
// admin token (a buyer's X-User-ID, or nothing) is told it needs the admin
// token. It was told "missing credentials: send Authorization: Bearer
// <token>", which a buyer who did send credentials, and holds a bearer
// token of its own, reads as "send yours".
func TestAdminRouteWithoutTokenSaysAdmin(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	o := e.buy(t, "s", header(userHeader, "alice"))
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/sales", `{"id":"t","name":"T","stock":1}`},
		{"PATCH", "/v1/sales/s", `{"name":"N"}`},
		{"GET", "/v1/sales/s/orders", ""},
		{"POST", "/v1/sales/s/archive", ""},
		{"POST", "/v1/orders/" + o.ID + "/pay", ""},
	} {
		for _, who := range []struct {
			name string
			opts []opt
		}{{"X-User-ID", []opt{header(userHeader, "alice")}}, {"nothing", nil}} {
			t.Run(c.method+" "+c.path+" with "+who.name, func(t *testing.T) {
				r := e.do(t, c.method, c.path, c.body, who.opts...)
				wantUnauthenticated(t, r)
				var body apiError
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				if msg := body.Error.Message; !strings.Contains(msg, "admin token") {
					t.Errorf("message %q does not say the endpoint needs the admin token", msg)
				}
			})
		}
	}
}

// TestUserHeaderRefusedSaysWhy: a buyer's request with X-User-ID to a
// server that does not trust it (no --insecure-user-header, as in
// production) is refused 401 with a message that says X-User-ID is not
// accepted here; it was told only "missing credentials", while it sent
// what it took for credentials, as the README's examples do.
func TestUserHeaderRefusedSaysWhy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/sales/s/purchases", `{"quantity":1}`},
		{"GET", "/v1/orders/o_00000000000000000000000000", ""},
		{"POST", "/v1/orders/o_00000000000000000000000000/cancel", ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := e.do(t, c.method, c.path, c.body, header(userHeader, "alice"))
			wantUnauthenticated(t, r)
			var body apiError
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if msg := body.Error.Message; !strings.Contains(msg, "X-User-ID") || !strings.Contains(msg, "--insecure-user-header") {
				t.Errorf("message %q does not say X-User-ID is not accepted without --insecure-user-header", msg)
			}
		})
	}
}
