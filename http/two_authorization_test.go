package http_test

import (
	"net/http"
	"strings"
	"testing"
)

// Two Authorization headers are refused (401, as docs/api.md fixes it),
// but they are not a refused token: no token was judged. The challenge
// said error="invalid_token", which tells a client (RFC 6750 §3.1) to
// drop its token and get another, then send the same two headers again;
// RFC 6750 names such a request invalid_request (more than one method of
// sending a token, a repeated parameter). The message says to send one.
func TestTwoAuthorizationHeadersChallenge(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10}`)
	o := e.buy(t, "s", asUser(t, "ann"))
	before := e.snapshot(t, "s")
	for _, tc := range []struct {
		name, method, path string
		opts               []opt
	}{
		{"purchase, two buyers", "POST", "/v1/sales/s/purchases", []opt{asUser(t, "kim"), asUser(t, "lee")}},
		{"purchase, one buyer twice", "POST", "/v1/sales/s/purchases", []opt{asUser(t, "kim"), asUser(t, "kim")}},
		{"order, buyer and admin", "GET", "/v1/orders/" + o.ID, []opt{asUser(t, "ann"), asAdmin()}},
		{"export, admin and a stranger", "GET", "/v1/sales/s/orders", []opt{asAdmin(), bearerAuth("gateway-token")}},
		{"export, admin and Basic", "GET", "/v1/sales/s/orders", []opt{asAdmin(), header("Authorization", "Basic Z2F0ZXdheTp4")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, "", tc.opts...)
			wantUnauthenticated(t, r)
			if got, want := r.header.Get("WWW-Authenticate"), `Bearer realm="surge", error="invalid_request"`; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q: a malformed request, not a refused token", got, want)
			}
			if !strings.Contains(string(r.body), "send one Authorization header, not 2") {
				t.Errorf("%v: want the message to say to send one Authorization header", r)
			}
		})
	}
	e.wantUnchanged(t, "s", before)
	// One header with a refused token is still invalid_token.
	r := e.do(t, "GET", "/v1/orders/"+o.ID, "", bearerAuth("garbage"))
	if got := r.header.Get("WWW-Authenticate"); r.status != http.StatusUnauthorized || got != `Bearer realm="surge", error="invalid_token"` {
		t.Errorf("a refused token: %v, WWW-Authenticate %q; want 401 invalid_token", r, got)
	}
}
