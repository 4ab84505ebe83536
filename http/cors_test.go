package http_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	surgehttp "github.com/surgehq/surge/http"
)

const shop = "https://shop.example.com"

// headerList splits a header's comma-separated values, lower-cased.
func headerList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for p := range strings.SplitSeq(v, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(p)))
		}
	}
	return out
}

func wantListed(t *testing.T, h http.Header, name string, want ...string) {
	t.Helper()
	got := headerList(h, name)
	for _, w := range want {
		if !slices.Contains(got, strings.ToLower(w)) {
			t.Errorf("%s = %q, want it to list %s", name, h.Values(name), w)
		}
	}
}

// A storefront's browser: the preflight of a purchase is answered with
// the methods and headers a purchase needs, for the named origin only;
// the purchase itself carries the origin and the headers its script may
// read; other origins get nothing that lets the browser through.
func TestCORS(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true, corsOrigins: []string{shop, "http://localhost:3000"}})
	e.createSale(t, `{"id":"drop","name":"Drop","stock":1}`)

	preflight := func(origin string) response {
		return e.do(t, http.MethodOptions, "/v1/sales/drop/purchases", "",
			header("Origin", origin), header("Access-Control-Request-Method", "POST"),
			// sorted and lower-cased, as the Fetch standard sends them
			header("Access-Control-Request-Headers", "authorization,content-type,idempotency-key,waiting-room-ticket,x-request-id"))
	}
	r := preflight(shop)
	if r.status != http.StatusNoContent {
		t.Fatalf("preflight: %v, want 204", r)
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != shop {
		t.Errorf("preflight Access-Control-Allow-Origin = %q, want %q", got, shop)
	}
	wantListed(t, r.header, "Access-Control-Allow-Methods", "POST")
	wantListed(t, r.header, "Access-Control-Allow-Headers", "Authorization", "Idempotency-Key", "X-Request-ID", "Content-Type", "Waiting-Room-Ticket")
	wantListed(t, r.header, "Vary", "Origin")
	if r.header.Get("Access-Control-Max-Age") == "" {
		t.Error("preflight has no Access-Control-Max-Age")
	}
	if v := r.header.Get("Access-Control-Allow-Credentials"); v != "" {
		t.Errorf("Access-Control-Allow-Credentials = %q: Surge needs no cookies", v)
	}

	for _, origin := range []string{"https://evil.example.com", "https://shop.example.com.evil.com", "http://shop.example.com", "null"} {
		r := preflight(origin)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin = %q, want none", origin, got)
		}
		wantListed(t, r.header, "Vary", "Origin")
	}

	// The purchase itself, then a sold-out one: both readable by the shop.
	for i, want := range []int{http.StatusCreated, http.StatusConflict} {
		r := e.do(t, http.MethodPost, "/v1/sales/drop/purchases", `{"quantity":1}`,
			header("Origin", shop), header(userHeader, "u"+string(rune('a'+i))), idemKey("k"+string(rune('a'+i))))
		if r.status != want {
			t.Fatalf("purchase %d: %v, want %d", i, r, want)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != shop {
			t.Errorf("purchase %d: Access-Control-Allow-Origin = %q", i, got)
		}
		wantListed(t, r.header, "Access-Control-Expose-Headers", "Retry-After", "Location", "Idempotent-Replayed", "X-Request-ID")
		wantListed(t, r.header, "Vary", "Origin")
	}
	r = e.do(t, http.MethodGet, "/v1/sales/drop", "", header("Origin", "https://evil.example.com"))
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("GET from another origin: Access-Control-Allow-Origin = %q", got)
	}

	// No Origin: no CORS headers; a cacheable answer still varies by it.
	r = e.do(t, http.MethodGet, "/v1/sales/drop", "")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" || !slices.Contains(headerList(r.header, "Vary"), "origin") {
		t.Errorf("GET without Origin: Access-Control-Allow-Origin %q, Vary %q; want none, Origin", got, r.header.Values("Vary"))
	}
	r = e.do(t, http.MethodPost, "/v1/sales/drop/purchases", "", header(userHeader, "uz"))
	wantError(t, r, http.StatusConflict, "sold_out")
	if len(r.header.Values("Vary")) != 0 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("purchase without Origin got CORS headers: %v", r.header)
	}
	// An OPTIONS that is no preflight goes to the routes: 405 in JSON.
	r = e.do(t, http.MethodOptions, "/v1/sales/drop", "", header("Origin", shop))
	wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
}

// Without --cors-origins a preflight is an unknown method: no CORS header
// lets a browser through.
func TestCORSOff(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	r := e.do(t, http.MethodOptions, "/v1/sales/drop/purchases", "", header("Origin", shop), header("Access-Control-Request-Method", "POST"))
	wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin = %q without --cors-origins", got)
	}
}

func TestCheckOrigins(t *testing.T) {
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"https://shop.example.com", true},
		{"http://localhost:3000", true},
		{"https://[::1]:8443", true},
		{"*", false},
		{"https://*.example.com", false},
		{"https://shop.example.com/", false},
		{"https://shop.example.com/path", false},
		{"shop.example.com", false},
		{"ftp://shop.example.com", false},
		{"https://user@shop.example.com", false},
		{"https://shop.example.com?x=1", false},
		{"https://Shop.example.com", false},
		{"", false},
	} {
		err := surgehttp.CheckOrigins([]string{tt.origin})
		if (err == nil) != tt.ok {
			t.Errorf("CheckOrigins(%q) = %v, want ok %v", tt.origin, err, tt.ok)
		}
	}
}

// TestCORSPreflightHeaderListForms: a preflight's
// Access-Control-Request-Headers is a list of header names, which are
// case-insensitive and in no required order (RFC 9110 §5.1, §5.6.1):
// browsers send it lower-cased and sorted, but a proxy or another client
// may not, and the headers this API documents are spelled "Content-Type",
// "X-User-ID". rs/cors allows only the browsers' form, so such a preflight
// got no Access-Control-Allow-Origin, and the storefront's purchase was
// blocked. Every form of an allowed list is allowed now; a list naming a
// header not allowed stays refused, however it is spelled.
func TestCORSPreflightHeaderListForms(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true, corsOrigins: []string{shop}})
	for _, c := range []struct {
		name  string
		lists []string
		allow bool
	}{
		{"the browsers' form", []string{"content-type,idempotency-key,x-user-id"}, true},
		{"canonical case", []string{"Content-Type,Idempotency-Key,X-User-ID"}, true},
		{"unsorted", []string{"x-user-id,content-type"}, true},
		{"spaces after commas", []string{"content-type, idempotency-key, x-user-id"}, true},
		{"split over two fields", []string{"Idempotency-Key", "Content-Type"}, true},
		{"a name twice", []string{"content-type,Content-Type"}, true},
		{"a header not allowed", []string{"Content-Type,X-Evil"}, false},
		{"a header not allowed, lower case", []string{"content-type,x-evil"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []opt{header("Origin", shop), header("Access-Control-Request-Method", "POST")}
			for _, l := range c.lists {
				opts = append(opts, header("Access-Control-Request-Headers", l))
			}
			r := e.do(t, http.MethodOptions, "/v1/sales/drop/purchases", "", opts...)
			if r.status != http.StatusNoContent {
				t.Fatalf("preflight: %v, want 204", r)
			}
			got := r.header.Get("Access-Control-Allow-Origin")
			if c.allow && got != shop {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, shop)
			}
			if !c.allow && got != "" {
				t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
			}
			if c.allow {
				for _, l := range c.lists {
					for n := range strings.SplitSeq(l, ",") {
						wantListed(t, r.header, "Access-Control-Allow-Headers", strings.TrimSpace(n))
					}
				}
			}
		})
	}
}
