package http_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// PATCH /v1/sales/{id} (admin): 200 with the changed sale; a paused sale
// answers purchases 409 paused and shows "status":"paused"; 409
// stock_below_sold; 400 for unknown fields, null where a value is
// required, bad types and bad values, none of which changes anything.
func TestUpdateSale(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"Phone drop","stock":5,"per_user_limit":2}`)
	patch := func(body string, opts ...opt) response {
		return e.do(t, "PATCH", "/v1/sales/s", body, opts...)
	}
	wantStatus(t, e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":2}`, asUser(t, "alice")), http.StatusCreated)

	r := patch(`{"paused":true}`, asAdmin())
	wantStatus(t, r, http.StatusOK)
	if got := mustSale(t, r); got.Status != "paused" || got.Remaining != 3 {
		t.Fatalf("paused sale = %+v, want status paused, 3 left", got)
	}
	if got := e.sale(t, "s"); got.Status != "paused" {
		t.Fatalf("GET of a paused sale: status %q", got.Status)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, "bob")), http.StatusConflict, string(surge.CodePaused))

	r = patch(`{"paused":false,"stock":8,"name":"Phone drop II","per_user_limit":1,"hold_seconds":60,"ends_at":"2031-03-14T12:00:00+01:00"}`, asAdmin())
	wantStatus(t, r, http.StatusOK)
	got := mustSale(t, r)
	if got.Status != "live" || got.Stock != 8 || got.Remaining != 6 || got.Name != "Phone drop II" || got.PerUserLimit != 1 ||
		got.HoldSeconds != 60 || got.EndsAt == nil || *got.EndsAt != "2031-03-14T11:00:00.000Z" {
		t.Fatalf("changed sale = %+v", got)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/s/purchases", `{"quantity":2}`, asUser(t, "bob")), http.StatusBadRequest, string(surge.CodeInvalid))
	e.buy(t, "s", asUser(t, "bob"))
	wantError(t, e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, "alice")), http.StatusConflict, string(surge.CodeLimitReached))

	r = patch(`{"stock":2}`, asAdmin())
	wantError(t, r, http.StatusConflict, string(surge.CodeStockBelowSold))
	var body apiError
	_ = json.Unmarshal(r.body, &body)
	if !strings.Contains(body.Error.Message, "3 units") {
		t.Errorf("stock_below_sold message %q does not say how many units are held", body.Error.Message)
	}
	wantStatus(t, patch(`{"stock":3}`, asAdmin()), http.StatusOK)
	if got := e.sale(t, "s"); got.Status != "sold_out" || got.Remaining != 0 {
		t.Fatalf("stock lowered to the units held: %+v, want sold_out", got)
	}
	r = patch(`{"ends_at":null}`, asAdmin())
	wantStatus(t, r, http.StatusOK)
	if got := mustSale(t, r); got.EndsAt != nil {
		t.Fatalf("ends_at null kept an end: %+v", got)
	}

	before := e.sale(t, "s")
	for _, c := range []struct{ body, mentions string }{
		{`{"stock":0}`, "stock"},
		{`{"stock":-5}`, "stock"},
		{`{"stock":1.5}`, "stock"},
		{`{"stock":"9"}`, "stock"},
		{`{"stock":null}`, "stock"},
		{`{"paused":"yes"}`, "paused"},
		{`{"paused":null}`, "paused"},
		{`{"name":""}`, "name"},
		{`{"name":7}`, "name"},
		{`{"per_user_limit":0}`, "per_user_limit"},
		{`{"per_user_limit":4}`, "per_user_limit"},
		{`{"hold_seconds":0}`, "hold_seconds"},
		{`{"ends_at":"tomorrow"}`, "ends_at"},
		{`{"ends_at":"2020-01-01T00:00:00Z"}`, "ends_at"}, // before starts_at
		{`{"ends_at":5}`, "ends_at"},
		{`{"starts_at":"2031-03-14T12:00:00Z"}`, "starts_at"},
		{`{"price_cents":100}`, "price_cents"},
		{`{"Stock":9}`, "Stock"},
		{`{"stock":9,"stock":10}`, "stock"},
		{`{"paused":true,"stock":0}`, "stock"},
		{`[]`, "object"},
		{`null`, "object"},
		{``, "empty"},
		{`{"paused":true} {}`, "one JSON object"},
	} {
		r := patch(c.body, asAdmin())
		wantError(t, r, http.StatusBadRequest, string(surge.CodeInvalid))
		var body apiError
		_ = json.Unmarshal(r.body, &body)
		if !strings.Contains(body.Error.Message, c.mentions) {
			t.Errorf("PATCH %s: message %q does not mention %q", c.body, body.Error.Message, c.mentions)
		}
	}
	if after := e.sale(t, "s"); !reflect.DeepEqual(after, before) {
		t.Errorf("refused changes changed the sale: %+v, was %+v", after, before)
	}

	wantStatus(t, patch(`{}`, asAdmin()), http.StatusOK)
	wantError(t, e.do(t, "PATCH", "/v1/sales/nope", `{"paused":true}`, asAdmin()), http.StatusNotFound, string(surge.CodeSaleNotFound))
	wantError(t, e.do(t, "PATCH", "/v1/sales/bad%20id", `{"paused":true}`, asAdmin()), http.StatusNotFound, string(surge.CodeSaleNotFound))
	wantError(t, patch(`{"paused":true}`), http.StatusUnauthorized, "unauthenticated")
	wantError(t, patch(`{"paused":true}`, asUser(t, "alice")), http.StatusUnauthorized, "unauthenticated")
	if got := e.sale(t, "s"); got.Status == "paused" {
		t.Error("an unauthenticated PATCH paused the sale")
	}
}

// A PATCH whose ends_at is a time, but the zero instant of Go's time.Time
// ("0001-01-01T00:00:00Z", what a client serialising an unset time.Time
// sends), is not after starts_at: docs/api.md says ends_at is "a time after
// starts_at ... or null for no end", and a bad value is 400 with nothing
// changed. It must not be read as null and take the sale's end away.
func TestPatchZeroInstantEndsAtIsNotNull(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"z","name":"Z","stock":5,"ends_at":"2031-03-14T10:00:00Z"}`)
	before := e.sale(t, "z")
	if before.EndsAt == nil {
		t.Fatalf("sale created without its end: %+v", before)
	}
	for _, v := range []string{`"0001-01-01T00:00:00Z"`, `"0001-01-01T01:00:00+01:00"`} {
		r := e.do(t, "PATCH", "/v1/sales/z", `{"ends_at":`+v+`}`, asAdmin())
		wantError(t, r, http.StatusBadRequest, string(surge.CodeInvalid))
		if after := e.sale(t, "z"); !reflect.DeepEqual(after, before) {
			t.Fatalf("PATCH ends_at %s changed the sale: %+v, was %+v", v, after, before)
		}
	}
	// Past the end, the sale is over: a purchase is 409 ended.
	e.clock.Advance(2 * time.Hour)
	wantError(t, e.do(t, "POST", "/v1/sales/z/purchases", "", header(userHeader, "alice")), http.StatusConflict, string(surge.CodeEnded))
}
