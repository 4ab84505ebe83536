package http_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestQueryOnWriteRefused: an endpoint that changes something and takes
// no query parameter refuses one (400 invalid_request) and changes
// nothing. Ignored, POST …/purchases?quantity=3 bought the body's one unit
// (or one without a body) while its client believed it asked for three.
func TestQueryOnWriteRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10,"per_user_limit":5}`)
	e.createSale(t, `{"id":"wr","name":"W","stock":5,"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`)
	held := e.buy(t, "s", asUser(t, "holder"))

	for _, c := range []struct {
		name, method, path, body string
		as                       opt
	}{
		{"purchase, quantity in the query and the body", "POST", "/v1/sales/s/purchases?quantity=3", `{"quantity":1}`, asUser(t, "alice")},
		{"purchase, quantity in the query only", "POST", "/v1/sales/s/purchases?quantity=3", "", asUser(t, "bob")},
		{"purchase, idempotency key in the query", "POST", "/v1/sales/s/purchases?idempotency_key=k1", "", asUser(t, "carol")},
		{"create sale", "POST", "/v1/sales?stock=5", `{"id":"t","name":"T","stock":1}`, asAdmin()},
		{"update sale", "PATCH", "/v1/sales/s?stock=1", `{"name":"Renamed"}`, asAdmin()},
		{"archive sale", "POST", "/v1/sales/s/archive?force=true", "", asAdmin()},
		{"join queue", "POST", "/v1/sales/wr/queue?x=1", "", asUser(t, "dave")},
		{"cancel order", "POST", "/v1/orders/" + held.ID + "/cancel?x=1", "", asUser(t, "holder")},
		{"pay order", "POST", "/v1/orders/" + held.ID + "/pay?amount_cents=0", "", asAdmin()},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(t, "s")
			r := e.do(t, c.method, c.path, c.body, c.as)
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			e.wantUnchanged(t, "s", before)
		})
	}
	if r := e.do(t, "GET", "/v1/sales/t", ""); r.status != http.StatusNotFound {
		t.Errorf("the refused create made sale t: %v", r)
	}
	if r := e.do(t, "GET", "/v1/sales/wr/queue", "", asUser(t, "dave")); r.status == http.StatusOK {
		t.Errorf("the refused join queued dave: %v", r)
	}
}

// TestListingUnknownParameterRefused: GET /v1/sales refuses a query
// parameter it does not take (400 invalid_request naming it). Ignored, a
// typo'd ?archive=true listed the live sales to a client that believed
// it read the archived ones, and ?limt=1 a page of 100.
func TestListingUnknownParameterRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"live","name":"Live","stock":1}`)
	for _, c := range []struct{ name, query, param string }{
		{"archive for archived", "?archive=true", "archive"},
		{"limt for limit", "?limt=1", "limt"},
		{"a known one beside it", "?limit=1&Cursor=x", "Cursor"},
		{"no value", "?archivedd", "archivedd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				r := e.do(t, method, "/v1/sales"+c.query, "")
				if method == "HEAD" {
					if r.status != http.StatusBadRequest {
						t.Errorf("HEAD /v1/sales%s: %v, want 400", c.query, r)
					}
					continue
				}
				wantError(t, r, http.StatusBadRequest, "invalid_request")
				if !strings.Contains(string(r.body), `\"`+c.param+`\"`) {
					t.Errorf("GET /v1/sales%s: %s does not name the parameter %q", c.query, r.body, c.param)
				}
			}
		})
	}
	// The parameters it takes still work.
	if r := e.do(t, "GET", "/v1/sales?limit=1&archived=false", ""); r.status != http.StatusOK {
		t.Errorf("GET /v1/sales?limit=1&archived=false: %v, want 200", r)
	}
}

// TestQueryMessageFitsTheEndpoint: the refusal of a query parameter told
// every endpoint's client to "send its input in the JSON body", also on
// the endpoints that take no input at all (archive, join, cancel, pay:
// a body other than {} is refused too), where following it fails again.
func TestQueryMessageFitsTheEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"S","stock":10,"per_user_limit":5}`)
	e.createSale(t, `{"id":"wr","name":"W","stock":5,"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`)
	held := e.buy(t, "s", asUser(t, "holder"))
	for _, c := range []struct {
		name, method, path string
		as                 opt
		takesBody          bool
	}{
		{"purchase", "POST", "/v1/sales/s/purchases?quantity=3", asUser(t, "alice"), true},
		{"create sale", "POST", "/v1/sales?stock=5", asAdmin(), true},
		{"update sale", "PATCH", "/v1/sales/s?stock=1", asAdmin(), true},
		{"archive sale", "POST", "/v1/sales/s/archive?force=true", asAdmin(), false},
		{"join queue", "POST", "/v1/sales/wr/queue?x=1", asUser(t, "dave"), false},
		{"cancel order", "POST", "/v1/orders/" + held.ID + "/cancel?x=1", asUser(t, "holder"), false},
		{"pay order", "POST", "/v1/orders/" + held.ID + "/pay?amount_cents=0", asAdmin(), false},
	} {
		r := e.do(t, c.method, c.path, "", c.as)
		wantError(t, r, http.StatusBadRequest, "invalid_request")
		if body := string(r.body); strings.Contains(body, "JSON body") != c.takesBody {
			t.Errorf("%s: %s; want the message to send the input to the JSON body only where the endpoint takes one", c.name, body)
		}
	}
}
