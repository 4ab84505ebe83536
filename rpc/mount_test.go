package rpc_test

import (
	"encoding/json"
	"io"
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
		status, ctype, code, body := errorAnswer(t, noRedirects, tc.method, base+tc.path, "application/json")
		if status != http.StatusNotFound || ctype != "application/json" || code != "not_found" {
			t.Errorf("%s %s: %d %s %s, want 404 application/json not_found", tc.method, tc.path, status, ctype, body)
		}
	}
}

// errorAnswer sends method url with the body {} (and contentType, unless
// empty) through c, and returns the answer's status, Content-Type, the
// code of its JSON error ("" when it is none) and its body.
func errorAnswer(t *testing.T, c *http.Client, method, url, contentType string) (status int, ctype, code string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(body, &e) == nil {
		code = e.Error.Code
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), code, body
}
