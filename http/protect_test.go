package http_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge/admission"
	surgehttp "github.com/surgehq/surge/http"
)

func TestRateLimitPerAddress(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true, protection: surgehttp.Protection{
		IP: admission.NewKeyed(rate.Every(time.Hour), 3, 1000, time.Hour),
	}})
	for i := range 3 {
		if r := e.do(t, http.MethodGet, "/v1/sales", ""); r.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %s", i, r)
		}
	}
	r := e.do(t, http.MethodGet, "/v1/sales", "")
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	// Health checks stay reachable for the load balancer.
	if r := e.do(t, http.MethodGet, "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("healthz under the limit: %s", r)
	}
	if r := e.do(t, http.MethodGet, "/readyz", ""); r.status != http.StatusOK {
		t.Errorf("readyz under the limit: %s", r)
	}
}

func TestRateLimitPerBuyer(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true,
		buyerRate: admission.NewKeyed(rate.Every(time.Hour), 2, 1000, time.Hour)})
	e.createSale(t, `{"id":"s","name":"s","stock":100,"per_user_limit":5}`)
	before := e.snapshot(t, "s")
	for i := range 2 {
		if r := e.do(t, http.MethodPost, "/v1/sales/s/purchases", "", header("X-User-ID", "alice")); r.status != http.StatusCreated {
			t.Fatalf("purchase %d: %s", i, r)
		}
	}
	r := e.do(t, http.MethodPost, "/v1/sales/s/purchases", "", header("X-User-ID", "alice"))
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Another buyer has a bucket of its own.
	if r := e.do(t, http.MethodPost, "/v1/sales/s/purchases", "", header("X-User-ID", "bob")); r.status != http.StatusCreated {
		t.Fatalf("another buyer: %s", r)
	}
	if got := e.sale(t, "s").Remaining; got != before.remaining-3 {
		t.Errorf("remaining %d, want %d: the refused purchase must not reserve", got, before.remaining-3)
	}
}

// TestRateLimitPerAddressIPv6Block: the per-address limit holds an IPv6
// client to its /64, the block one subscriber is given, so that it
// cannot escape the limit by rotating through its own addresses (here
// forwarded by a trusted proxy); another /64 has a bucket of its own.
func TestRateLimitPerAddressIPv6Block(t *testing.T) {
	e := newEnv(t, envOptions{protection: surgehttp.Protection{
		IP:             admission.NewKeyed(rate.Every(time.Hour), 2, 1000, time.Hour),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}})
	from := func(addr string) opt { return header("X-Forwarded-For", addr) }
	for i, addr := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2"} {
		if r := e.do(t, http.MethodGet, "/v1/sales", "", from(addr)); r.status != http.StatusOK {
			t.Fatalf("request %d within the /64's burst: %s", i, r)
		}
	}
	r := e.do(t, http.MethodGet, "/v1/sales", "", from("2001:db8:1:2:ffff:ffff:ffff:ffff"))
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if r := e.do(t, http.MethodGet, "/v1/sales", "", from("2001:db8:1:3::1")); r.status != http.StatusOK {
		t.Errorf("another /64: %s", r)
	}
}
