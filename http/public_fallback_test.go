package http_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPublicListenerHidesAdminPathsForEveryMethod: on the public listener
// of --admin-addr the admin-only paths answer 404 "as if they did not
// exist" (docs/protection.md), whatever the method: a wrong method must
// not answer 405 naming the hidden one in Allow, and the Allow of a path
// shared with public routes names only the methods served there.
func TestPublicListenerHidesAdminPathsForEveryMethod(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	public := httptest.NewServer(e.handler.Public())
	t.Cleanup(public.Close)
	pub := &env{eng: e.eng, store: e.store, clock: e.clock, handler: e.handler, srv: public}
	e.createSale(t, `{"id":"s","name":"s","stock":5}`)
	o := pub.buy(t, "s", header("X-User-ID", "alice"))

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v1/sales/s/archive"},
		{http.MethodDelete, "/v1/sales/s/archive"},
		{http.MethodPost, "/v1/sales/s/orders"},
		{http.MethodGet, "/v1/orders/" + o.ID + "/pay"},
	} {
		wantError(t, pub.do(t, c.method, c.path, "", asAdmin()), http.StatusNotFound, "not_found")
	}
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPut, "/v1/sales", "GET, HEAD"},
		{http.MethodPut, "/v1/sales/s", "GET, HEAD"},
	} {
		r := pub.do(t, c.method, c.path, "", asAdmin())
		wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q (the admin methods are hidden here)", c.method, c.path, got, c.allow)
		}
		if strings.Contains(string(r.body), "POST") || strings.Contains(string(r.body), "PATCH") {
			t.Errorf("%s %s names a hidden method: %v", c.method, c.path, r)
		}
	}
	// The full API keeps its 405s.
	wantError(t, e.do(t, http.MethodGet, "/v1/sales/s/archive", "", asAdmin()), http.StatusMethodNotAllowed, "method_not_allowed")
}
