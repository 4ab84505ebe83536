package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge/internal/testtoken"
)

// TestUnauthorizedChallenge: every 401 of the HTTP API carries a Bearer
// challenge (RFC 9110 §11.6.1, RFC 6750 §3), with error="invalid_token"
// when the request sent a token that was refused (RFC 6750 §3.1), and
// without an error when it sent none; the status and body stay
// 401 unauthenticated.
func TestUnauthorizedChallenge(t *testing.T) {
	expired := testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})
	valid := userToken(t, "alice")
	forged := testtoken.BrokenSignature(valid)
	for _, mode := range []struct {
		name string
		opt  envOptions
	}{
		{"JWT secret", envOptions{}},
		{"JWT secret and X-User-ID", envOptions{insecureUserHeader: true}},
	} {
		e := newEnv(t, mode.opt)
		for _, c := range []struct {
			name, method, path string
			opts               []opt
			invalidToken       bool
		}{
			{"buyer route, no credentials", "GET", "/v1/orders/o_missing", nil, false},
			{"buyer route, expired token", "GET", "/v1/orders/o_missing", []opt{bearerAuth(expired)}, true},
			{"buyer route, forged signature", "POST", "/v1/sales/s/purchases", []opt{bearerAuth(forged), idemKey("k")}, true},
			{"buyer route, garbage token", "GET", "/v1/orders/o_missing", []opt{bearerAuth("not-a-jwt")}, true},
			{"admin route, no credentials", "POST", "/v1/sales", nil, false},
			{"admin route, wrong token", "POST", "/v1/sales", []opt{bearerAuth("wrong-admin-token")}, true},
		} {
			r := e.do(t, c.method, c.path, `{"quantity":1}`, c.opts...)
			got := r.header.Get("WWW-Authenticate")
			if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), `"unauthenticated"`) {
				t.Errorf("%s, %s: %d %s; want 401 unauthenticated", mode.name, c.name, r.status, r.body)
				continue
			}
			switch {
			case !strings.HasPrefix(got, "Bearer"):
				t.Errorf("%s, %s: WWW-Authenticate %q; want a Bearer challenge", mode.name, c.name, got)
			case c.invalidToken && !strings.Contains(got, `error="invalid_token"`):
				t.Errorf("%s, %s: WWW-Authenticate %q; want error=\"invalid_token\", the request sent a token that was refused", mode.name, c.name, got)
			case !c.invalidToken && strings.Contains(got, "error="):
				t.Errorf("%s, %s: WWW-Authenticate %q; want no error, the request sent no token (RFC 6750 §3.1)", mode.name, c.name, got)
			}
		}
	}
}

// TestAdminRouteBuyerTokenChallenge: a buyer's valid token on an admin
// route is a good token of the wrong kind, as the admin token is on a
// buyer's route: still 401 unauthenticated (the admin routes' contract),
// but its challenge must not call the token invalid (RFC 6750 §3.1), or
// a client would throw away a token that is good; a token that is refused
// keeps error="invalid_token" there.
func TestAdminRouteBuyerTokenChallenge(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	valid := userToken(t, "alice")
	forged := testtoken.BrokenSignature(valid)
	for _, route := range []struct{ method, path, body string }{
		{"POST", "/v1/sales", `{"id":"new","name":"New","stock":1}`},
		{"PATCH", "/v1/sales/s", `{"paused":true}`},
		{"GET", "/v1/sales/s/orders", ""},
		{"POST", "/v1/sales/s/archive", ""},
		{"POST", "/v1/orders/o_missing/pay", ""},
	} {
		for _, c := range []struct {
			name         string
			token        string
			invalidToken bool
		}{
			{"a buyer's valid token", valid, false},
			{"a forged token", forged, true},
		} {
			r := e.do(t, route.method, route.path, route.body, bearerAuth(c.token))
			got := r.header.Get("WWW-Authenticate")
			switch {
			case r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), `"unauthenticated"`):
				t.Errorf("%s %s, %s: %d %s; want 401 unauthenticated", route.method, route.path, c.name, r.status, r.body)
			case !strings.HasPrefix(got, "Bearer"):
				t.Errorf("%s %s, %s: WWW-Authenticate %q; want a Bearer challenge", route.method, route.path, c.name, got)
			case c.invalidToken && !strings.Contains(got, `error="invalid_token"`):
				t.Errorf("%s %s, %s: WWW-Authenticate %q; want error=\"invalid_token\", the token was refused", route.method, route.path, c.name, got)
			case !c.invalidToken && strings.Contains(got, `error="invalid_token"`):
				t.Errorf("%s %s, %s: WWW-Authenticate %q; want no invalid_token: the token is valid, only not the admin's", route.method, route.path, c.name, got)
			}
		}
	}
}

// TestForgedTokenRefused: the forged token the challenge tests send is
// refused, whatever the valid token it is made from. This one's signature
// ends in "AAAA" (exp 4102734157 signs so), which replacing the last four
// characters by "AAAA" left as it was: about one token in four million,
// and the exp of a token made now moves with each second.
func TestForgedTokenRefused(t *testing.T) {
	valid := testtoken.Sign(t, jwt.SigningMethodHS256, jwtSecret, jwt.MapClaims{"sub": "alice", "exp": 4102734157})
	if !strings.HasSuffix(valid, "AAAA") {
		t.Fatalf("the token %s no longer ends in AAAA: the test needs one that does", valid)
	}
	e := newEnv(t, envOptions{})
	wantStatus(t, e.do(t, "GET", "/v1/orders/o_missing", "", bearerAuth(valid)), http.StatusNotFound)
	forged := testtoken.BrokenSignature(valid)
	if r := e.do(t, "GET", "/v1/orders/o_missing", "", bearerAuth(forged)); r.status != http.StatusUnauthorized {
		t.Errorf("a token with a broken signature (%s, from %s): %d %s; want 401", forged, valid, r.status, r.body)
	}
}
