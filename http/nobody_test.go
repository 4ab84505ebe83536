package http_test

import (
	"net/http"
	"testing"
)

// TestNoBodyEndpointsRefuseBody: cancel, pay and archive take no body
// (or {}); any other body is refused (400 invalid_request) and changes
// nothing. Ignored, {"quantity":1} on the cancel of an order of three
// units (a buyer giving back one) cancelled all three, which in a
// sold-out sale the buyer cannot buy back.
func TestNoBodyEndpointsRefuseBody(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10,"per_user_limit":5}`)
	o := e.buy(t, "s", asUser(t, "alice"))
	r := e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":3}`, asUser(t, "bob"))
	wantStatus(t, r, http.StatusCreated)
	three := mustOrder(t, r)

	for _, c := range []struct {
		name, path, body string
		as               opt
	}{
		{"partial cancel", "/v1/orders/" + three.ID + "/cancel", `{"quantity":1}`, asUser(t, "bob")},
		{"cancel with a reason", "/v1/orders/" + three.ID + "/cancel", `{"reason":"changed my mind"}`, asUser(t, "bob")},
		{"cancel with garbage", "/v1/orders/" + three.ID + "/cancel", `quantity=1`, asUser(t, "bob")},
		{"pay with an amount", "/v1/orders/" + o.ID + "/pay", `{"amount_cents":1}`, asAdmin()},
		{"archive forced", "/v1/sales/s/archive", `{"force":true}`, asAdmin()},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t, "s")
			r := e.do(t, "POST", c.path, c.body, c.as)
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			e.wantUnchanged(t, "s", before)
		})
	}
	// No body, blanks, and {} stay accepted.
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+three.ID+"/cancel", " {} ", asUser(t, "bob")), http.StatusOK)
	wantStatus(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/pay", "\n", asAdmin()), http.StatusOK)
}
