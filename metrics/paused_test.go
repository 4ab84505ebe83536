package metrics_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestPausedOutcome: purchases of a paused sale (PATCH /v1/sales/{id})
// count under surge_purchases_total{outcome="paused"}, exported at 0
// before the first.
func TestPausedOutcome(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, srv := serve(t, reg, sqlite.Options{NoExpiry: true})
	id, name, n := "p", "Paused", int64(5)
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &n}); err != nil {
		t.Fatal(err)
	}
	paused := func() float64 {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(scrape(t, srv.URL)))
		if err != nil {
			t.Fatal(err)
		}
		return value(t, fams, "surge_purchases_total", "p", "outcome", "paused")
	}
	if got := paused(); got != 0 {
		t.Fatalf("paused before any purchase = %v, want 0", got)
	}
	do := func(method, path, body string, header map[string]string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("PATCH", "/v1/sales/p", `{"paused":true}`, map[string]string{"Authorization": "Bearer " + adminToken}); c != http.StatusOK {
		t.Fatalf("PATCH paused: %d", c)
	}
	for _, user := range []string{"a", "b", "c"} {
		if c := do("POST", "/v1/sales/p/purchases", "", map[string]string{"X-User-ID": user}); c != http.StatusConflict {
			t.Fatalf("purchase of a paused sale: %d, want 409", c)
		}
	}
	if got := paused(); got != 3 {
		t.Errorf("paused = %v, want 3", got)
	}
}
