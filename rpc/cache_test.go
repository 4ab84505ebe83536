package rpc_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOrderAnswersAreNotStoredOverConnect: GetOrder has no side effects,
// so Connect serves it over GET, a request any cache or CDN in front may
// keep, keyed on the URL (the order's id), not on who asked. The HTTP
// API's order answers say Cache-Control: private, no-store, errors
// included; the same order over Connect said nothing, so a cache could
// hand one buyer's order (or a stale status, or a 404) to the next caller.
// Every Connect answer about an order must say it too.
func TestOrderAnswersAreNotStoredOverConnect(t *testing.T) {
	base := server(t)
	const sale = "rpc-order-no-store"
	createSale(t, base, sale, 10)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/"+sale+"/purchases", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Order struct{ ID string } }
	err = json.NewDecoder(resp.Body).Decode(&out)
	order := out.Order
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil || order.ID == "" {
		t.Fatalf("purchase: %d, %v, order %q", resp.StatusCode, err, order.ID)
	}
	msg := `{"id":"` + order.ID + `"}`
	get := base + svc + "GetOrder?encoding=json&message=" + url.QueryEscape(msg)
	for _, c := range []struct {
		what, method, url, user, body string
		status                        int
	}{
		{"GET GetOrder, its buyer", http.MethodGet, get, "alice", "", http.StatusOK},
		{"GET GetOrder, another buyer", http.MethodGet, get, "mallory", "", http.StatusNotFound},
		{"POST GetOrder, its buyer", http.MethodPost, base + svc + "GetOrder", "alice", msg, http.StatusOK},
		{"POST CancelOrder, another buyer", http.MethodPost, base + svc + "CancelOrder", "mallory", msg, http.StatusNotFound},
		{"POST CancelOrder, its buyer", http.MethodPost, base + svc + "CancelOrder", "alice", msg, http.StatusOK},
	} {
		code, got := cacheControl(t, c.what, c.method, c.url, c.user, c.body, c.status)
		if got != "private, no-store" {
			t.Errorf("Connect %s: answered %d with Cache-Control %q; want \"private, no-store\" (one buyer's order, as the HTTP API answers it)",
				c.what, code, got)
		}
	}
}

// TestSaleReadsAreRevalidatedOverConnect: GetSale and ListSales have no
// side effects, so Connect serves them over GET, which a cache or CDN may
// keep by its URL; the sale's state changes every moment, so they must
// say no-cache, as the HTTP API's sale reads do.
func TestSaleReadsAreRevalidatedOverConnect(t *testing.T) {
	base := server(t)
	const sale = "rpc-sale-no-cache"
	createSale(t, base, sale, 10)
	get := func(method, msg string) string {
		return base + svc + method + "?encoding=json&message=" + url.QueryEscape(msg)
	}
	for _, c := range []struct {
		what, method, url, body string
		status                  int
	}{
		{"GET GetSale", http.MethodGet, get("GetSale", `{"id":"`+sale+`"}`), "", http.StatusOK},
		{"GET GetSale of a sale not yet created", http.MethodGet, get("GetSale", `{"id":"later"}`), "", http.StatusNotFound},
		{"GET ListSales", http.MethodGet, get("ListSales", `{}`), "", http.StatusOK},
		{"POST GetSale", http.MethodPost, base + svc + "GetSale", `{"id":"` + sale + `"}`, http.StatusOK},
	} {
		code, got := cacheControl(t, c.what, c.method, c.url, "", c.body, c.status)
		if got != "no-cache" {
			t.Errorf("Connect %s: answered %d with Cache-Control %q; want \"no-cache\" (as the HTTP API's sale reads)",
				c.what, code, got)
		}
	}
}

// cacheControl sends a Connect request (as user, when given) and returns
// the answer's status and Cache-Control, failing the test (what) on a
// status other than want.
func cacheControl(t *testing.T, what, method, target, user, body string, want int) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if user != "" {
		req.Header.Set("X-User-ID", user)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("Connect %s: answered %d %s; want %d", what, resp.StatusCode, got, want)
	}
	return resp.StatusCode, resp.Header.Get("Cache-Control")
}
