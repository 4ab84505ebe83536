package rpc_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A path under the service that names no procedure is answered as any
// unknown path of the API (docs/api.md, "Anything else"): 404 not_found
// in the JSON error shape, not connect-go's plain-text 404.
func TestUnknownProcedureAnswersJSONNotFound(t *testing.T) {
	base := server(t)
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/surge.v1.SaleService/Nope"},
		{http.MethodPost, "/surge.v1.SaleService/"},
		{http.MethodPost, "/surge.v1.SaleService/Purchase/x"},
		{http.MethodPost, "/surge.v1.SaleService/purchase"},
		{http.MethodGet, "/surge.v1.SaleService/Nope"},
		// Not redirected (ServeMux's 307 to the subtree, with no body).
		{http.MethodPost, "/surge.v1.SaleService"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error struct{ Code string } }
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" || derr != nil || body.Error.Code != "not_found" {
			t.Errorf("%s %s: %d %s (%v) code %q, want 404 application/json not_found", tc.method, tc.path,
				resp.StatusCode, resp.Header.Get("Content-Type"), derr, body.Error.Code)
		}
	}
}
