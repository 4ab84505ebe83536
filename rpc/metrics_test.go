package rpc_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

// purchaseOutcomes reads surge_purchases_total of sale by outcome.
func purchaseOutcomes(t *testing.T, reg *prometheus.Registry, sale string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "surge_purchases_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["sale"] == sale && m.GetCounter().GetValue() > 0 {
				out[labels["outcome"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// surge_purchases_total counts purchase answers whichever API gave them:
// the same purchases over gRPC and over HTTP, each on a sale of its own,
// leave the same outcomes (docs/observability.md; the dashboard and the
// alerts read it).
func TestGRPCPurchasesAreCountedAsHTTPOnes(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	g := rpc.New(eng, rpc.Config{Logger: log})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount, Gatherer: reg})
	srv := httptest.NewServer(api)
	defer srv.Close()
	createSale(t, srv.URL, "over-http", 2)
	createSale(t, srv.URL, "over-grpc", 2)

	purchases := []struct{ user, key string }{
		{"alice", "a1"},                    // reserved
		{"alice", "a1"},                    // replayed
		{"alice", "a2"},                    // limit_reached
		{"bob", ""},                        // reserved
		{"carol", ""},                      // sold_out
		{"", ""},                           // unauthenticated
		{"dave", strings.Repeat("k", 129)}, // invalid_request
	}
	c := surgev1connect.NewSaleServiceClient(srv.Client(), srv.URL)
	for _, p := range purchases {
		r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "over-grpc", IdempotencyKey: p.key})
		if p.user != "" {
			r.Header().Set("X-User-ID", p.user)
		}
		_, _ = c.Purchase(ctx, r)

		hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/sales/over-http/purchases", nil)
		if p.user != "" {
			hr.Header.Set("X-User-ID", p.user)
		}
		if p.key != "" {
			hr.Header.Set("Idempotency-Key", p.key)
		}
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := purchaseOutcomes(t, reg, "over-http")
	if len(want) != 6 {
		t.Fatalf("HTTP purchases counted as %v, want 6 outcomes", want)
	}
	got := purchaseOutcomes(t, reg, "over-grpc")
	for outcome, n := range want {
		if got[outcome] != n {
			t.Errorf(`surge_purchases_total{sale="over-grpc",outcome=%q} = %v, want %v as over HTTP`, outcome, got[outcome], n)
		}
	}
	for outcome, n := range got {
		if _, ok := want[outcome]; !ok {
			t.Errorf(`surge_purchases_total{sale="over-grpc",outcome=%q} = %v, not counted over HTTP`, outcome, n)
		}
	}
}
