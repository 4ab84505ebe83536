package http_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPublicListenerHidesAdmin: with a separate admin listener, the public
// API answers the admin-only endpoints as if they did not exist and the
// admin token grants nothing there, while the full API keeps both.
func TestPublicListenerHidesAdmin(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	public := httptest.NewServer(e.handler.Public())
	t.Cleanup(public.Close)
	pub := &env{eng: e.eng, store: e.store, clock: e.clock, handler: e.handler, srv: public}

	wantError(t, pub.do(t, http.MethodPost, "/v1/sales", `{"id":"s","name":"s","stock":5}`, asAdmin()), http.StatusNotFound, "not_found")
	e.createSale(t, `{"id":"s","name":"s","stock":5}`)
	wantError(t, pub.do(t, http.MethodGet, "/v1/sales/s/orders", "", asAdmin()), http.StatusNotFound, "not_found")

	o := pub.buy(t, "s", header("X-User-ID", "alice"))
	wantError(t, pub.do(t, http.MethodPost, "/v1/orders/"+o.ID+"/pay", "", asAdmin()), http.StatusNotFound, "not_found")
	// The admin token is no identity on the public side…
	wantError(t, pub.do(t, http.MethodGet, "/v1/orders/"+o.ID, "", asAdmin()), http.StatusUnauthorized, "unauthenticated")
	// …but the buyer still reads their order there, and the full API
	// still serves the operator.
	wantStatus(t, pub.do(t, http.MethodGet, "/v1/orders/"+o.ID, "", header("X-User-ID", "alice")), http.StatusOK)
	wantStatus(t, e.do(t, http.MethodGet, "/v1/orders/"+o.ID, "", asAdmin()), http.StatusOK)
	wantStatus(t, e.do(t, http.MethodPost, "/v1/orders/"+o.ID+"/pay", "", asAdmin()), http.StatusOK)
	if got := len(e.export(t, "s")); got != 1 {
		t.Errorf("export on the full API has %d orders, want 1", got)
	}
}
