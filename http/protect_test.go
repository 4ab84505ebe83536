package http_test

import (
	"net/http"
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
