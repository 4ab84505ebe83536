package http

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rs/cors"
)

// CORS lets storefronts call the API from the browser (--cors-origins).
// rs/cors does the protocol (preflight, the allowed and exposed headers,
// Vary); this file decides what is allowed and keeps requests without an
// Origin header, which is every purchase that does not come from a
// browser, free of any of it.

// corsMethods are the methods a browser may use cross-origin: every method
// the API routes (PATCH included, for the sale updates) plus the preflight.
var corsMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodOptions}

// corsHeaders are the request headers a storefront may send: credentials
// (a bearer token; X-User-ID only where the server trusts it), the
// purchase's Idempotency-Key and waiting-room ticket, tracing, and the
// headers of the Connect and gRPC-Web protocols of the gRPC API.
var corsHeaders = []string{
	"Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID", TicketHeader, "X-User-ID",
	"Traceparent", "Tracestate",
	"Connect-Protocol-Version", "Connect-Timeout-Ms", "Grpc-Timeout", "X-Grpc-Web", "X-User-Agent",
}

// corsExposed are the answer headers a storefront's script may read.
var corsExposed = []string{
	"Retry-After", "Location", "Idempotent-Replayed", "X-Request-ID", "WWW-Authenticate",
	"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Surge-Code",
}

// corsMaxAge is how long a browser may cache a preflight's answer.
const corsMaxAge = 600 // seconds

// CheckOrigins validates --cors-origins: each an exact origin
// (scheme://host[:port], no path), never "*". Surge authenticates with the
// Authorization header, not cookies, so Access-Control-Allow-Credentials
// is never sent and an allowed origin is always named, never a wildcard.
func CheckOrigins(origins []string) error {
	for _, o := range origins {
		if strings.Contains(o, "*") {
			return fmt.Errorf("cors origin %q: wildcards are not allowed; name each origin exactly", o)
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
			return fmt.Errorf("cors origin %q: must be an origin such as https://shop.example.com (scheme, host, optional port; no path)", o)
		}
		if strings.ToLower(o) != o {
			return fmt.Errorf("cors origin %q: must be lower case, as browsers send it", o)
		}
	}
	return nil
}

// newCORS returns the CORS handler of origins, nil when there are none.
func newCORS(origins []string) *cors.Cors {
	if len(origins) == 0 {
		return nil
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: corsMethods,
		AllowedHeaders: corsHeaders,
		ExposedHeaders: corsExposed,
		MaxAge:         corsMaxAge,
	})
}

// applyCORS adds the CORS headers of a request, and answers a preflight
// itself (it then reports false). A request without Origin costs a map
// lookup: only answers a cache may keep (GET, HEAD) get Vary: Origin,
// so that a cache does not hand a browser an answer made for another
// origin; a purchase gets nothing.
func (s *Server) applyCORS(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := r.Header["Origin"]; !ok {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			w.Header()["Vary"] = varyOrigin
		}
		return true
	}
	if r.Method == http.MethodOptions {
		if vs, ok := r.Header["Access-Control-Request-Headers"]; ok {
			r.Header["Access-Control-Request-Headers"] = requestHeaderList(vs)
		}
	}
	s.cors.HandlerFunc(w, r)
	// HandlerFunc answered a preflight (an OPTIONS naming the method to
	// come); anything else goes on to the routes with its headers set.
	return r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == ""
}

var varyOrigin = []string{"Origin"}

// maxRequestHeaderList bounds the Access-Control-Request-Headers that
// requestHeaderList rewrites: every header a storefront may ask fits
// many times over, and a longer one, left as sent, is refused by rs/cors
// without the cost of sorting it.
const maxRequestHeaderList = 2 << 10

// requestHeaderList spells a preflight's Access-Control-Request-Headers
// as browsers do (RFC 9110 header names are case-insensitive, and a list
// may come in any order, over several fields): one field, lower-cased,
// sorted, without repeats. rs/cors accepts only that form, so a proxy or
// client that sent "Content-Type, X-User-ID" had its preflight refused.
func requestHeaderList(vs []string) []string {
	n := 0
	for _, v := range vs {
		n += len(v) + 1
	}
	if n > maxRequestHeaderList {
		return vs
	}
	var names []string
	for _, v := range vs {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToLower(strings.Trim(name, " \t")); name != "" {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return []string{strings.Join(slices.Compact(names), ",")}
}
