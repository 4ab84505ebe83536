package http_test

import (
	"net/http"
	"testing"
)

// Every answer about an order, errors included, is "private, no-store",
// and every queue answer "no-store" (docs/api.md): a wrong method's 405
// too, or a shared cache keeps it for a path that names a buyer's order
// or ticket.
func TestWrongMethodAnswersNotStored(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodDelete, "/v1/orders/o_x", "private, no-store"},
		{http.MethodGet, "/v1/orders/o_x/cancel", "private, no-store"},
		{http.MethodGet, "/v1/orders/o_x/pay", "private, no-store"},
		{http.MethodDelete, "/v1/sales/s/queue", "no-store"},
		{http.MethodPost, "/v1/sales/s/queue/events", "no-store"},
	} {
		r := e.do(t, tc.method, tc.path, "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Cache-Control") != tc.want {
			t.Errorf("%s %s: %d, Cache-Control %q; want 405 and %q", tc.method, tc.path, r.status, r.header.Get("Cache-Control"), tc.want)
		}
	}
}
