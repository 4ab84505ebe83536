package http_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestBodiesReadWhateverTheirContentType: a request body is read as JSON
// whatever its Content-Type says (docs/api.md). Clients depend on it:
// curl -d labels its JSON application/x-www-form-urlencoded (the docs'
// own examples), others send none, or a variant of application/json. A
// 415 for a label, however wrong, would refuse a body the API can read,
// with a status no endpoint's contract lists; a body that is not JSON is
// refused as such, 400 invalid_request, whatever its label.
func TestBodiesReadWhateverTheirContentType(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	for i, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON",
		"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "text/xml"} {
		labelled := func(o ...opt) []opt {
			if ct != "" {
				o = append(o, header("Content-Type", ct))
			}
			return o
		}
		id := fmt.Sprintf("ct-%d", i)
		if r := e.do(t, http.MethodPost, "/v1/sales", fmt.Sprintf(`{"id":%q,"name":"Drop","stock":5,"per_user_limit":2}`, id),
			labelled(asAdmin())...); r.status != http.StatusCreated {
			t.Errorf("create, Content-Type %q: %v, want 201", ct, r)
			continue
		}
		if r := e.do(t, http.MethodPatch, "/v1/sales/"+id, `{"name":"Drop, renamed"}`, labelled(asAdmin())...); r.status != http.StatusOK {
			t.Errorf("PATCH, Content-Type %q: %v, want 200", ct, r)
		}
		r := e.do(t, http.MethodPost, "/v1/sales/"+id+"/purchases", `{"quantity":2}`, labelled(header(userHeader, "alice"))...)
		if r.status != http.StatusCreated {
			t.Errorf("purchase, Content-Type %q: %v, want 201", ct, r)
		} else if o := mustOrder(t, r); o.Quantity != 2 {
			t.Errorf("purchase, Content-Type %q: bought %d units, want the body's 2", ct, o.Quantity)
		}
	}
	r := e.do(t, http.MethodPost, "/v1/sales/ct-0/purchases", "quantity=2",
		header(userHeader, "bob"), header("Content-Type", "application/x-www-form-urlencoded"))
	wantError(t, r, http.StatusBadRequest, "invalid_request")
}
