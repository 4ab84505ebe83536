package rpc_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/surgehq/surge/rpc"
)

// TestConnectGETQueryReadAsSent: a read over Connect's GET carries its
// message in the query string. connect-go read the first of two message
// (or encoding, base64, compression) parameters and dropped a pair it
// could not read, without a word, so ?message=A&message=B was answered
// for A while a proxy, cache or log in front may read B: the HTTP API
// refuses a parameter given twice, or a query that does not parse
// (GET /v1/sales), 400 invalid_request. Over Connect the same is
// INVALID_ARGUMENT (400, invalid_request), whichever read it is.
func TestConnectGETQueryReadAsSent(t *testing.T) {
	base := server(t)
	createSale(t, base, "a", 5)
	createSale(t, base, "b", 5)
	msg := func(s string) string { return url.QueryEscape(s) }
	a, b := msg(`{"id":"a"}`), msg(`{"id":"b"}`)
	for _, c := range []struct{ name, method, query string }{
		{"message twice", "GetSale", "encoding=json&message=" + a + "&message=" + b},
		{"encoding twice", "GetSale", "encoding=json&encoding=proto&message=" + a},
		{"base64 twice", "GetSale", "encoding=json&base64=0&base64=1&message=" + a},
		{"compression twice", "GetSale", "encoding=json&compression=identity&compression=gzip&message=" + a},
		{"connect twice", "GetSale", "connect=v1&connect=v1&encoding=json&message=" + a},
		{"a message that does not parse beside one that does", "GetSale", "encoding=json&message=" + a + "&message=%zz"},
		{"a semicolon, which some read as a separator", "GetSale", "encoding=json&message=" + a + "&x=1;message=" + b},
		{"message twice, listing", "ListSales", "encoding=json&message=" + msg(`{"limit":1}`) + "&message=" + msg(`{"archived":true}`)},
		{"message twice, order", "GetOrder", "encoding=json&message=" + msg(`{"id":"o1"}`) + "&message=" + msg(`{"id":"o2"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, code, body := connectGET(t, base+svc+c.method+"?"+c.query)
			if status != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(body, `"invalid_argument"`) {
				t.Errorf("GET %s?%s: %d, %s %q, %s; want 400 invalid_argument, invalid_request", c.method, c.query, status, rpc.CodeHeader, code, body)
			}
		})
	}
	// One of each is read as before.
	if status, _, body := connectGET(t, base+svc+"GetSale?connect=v1&encoding=json&base64=0&compression=identity&message="+b); status != http.StatusOK || !strings.Contains(body, `"id":"b"`) {
		t.Errorf("GET GetSale with each parameter once: %d %s, want 200 with sale b", status, body)
	}
}

// connectGET sends a Connect GET call as alice and returns its answer's
// status, Surge-Code and body.
func connectGET(t *testing.T, target string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(rpc.CodeHeader), string(b)
}
