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
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/surgehq/surge"
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

// meteredEngine is an engine over a fresh SQLite store whose metrics are
// registered in reg, and the discarding logger it logs to.
func meteredEngine(t *testing.T, reg *prometheus.Registry) (*engine.Engine, *slog.Logger) {
	t.Helper()
	m, err := metrics.New(reg, version.Info{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(context.Background(), st, engine.Config{Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	return eng, log
}

// surge_purchases_total counts purchase answers whichever API gave them:
// the same purchases over gRPC and over HTTP, each on a sale of its own,
// leave the same outcomes (docs/observability.md; the dashboard and the
// alerts read it).
func TestGRPCPurchasesAreCountedAsHTTPOnes(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, log := meteredEngine(t, reg)
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

// scrapedOutcomes reads surge_purchases_total from the server's own
// /metrics, summed over the sales, by outcome.
func scrapedOutcomes(t *testing.T, base string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range fams["surge_purchases_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// A purchase connect-go refuses itself, before Purchase runs (a message
// that does not decode, or is over the bound), is answered invalid_request
// or too_large as over HTTP, where surge_purchases_total counts it; it
// must count over gRPC and Connect too (docs/observability.md), read from
// the real /metrics.
func TestGRPCPurchasesRefusedBeforeTheHandlerAreCounted(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, log := meteredEngine(t, reg)
	g := rpc.New(eng, rpc.Config{Logger: log})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount, Gatherer: reg})
	srv := httptest.NewUnstartedServer(api)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()
	createSale(t, srv.URL, "s", 5)
	before := scrapedOutcomes(t, srv.URL)

	// Connect with JSON: an explicit quantity 0, and an unknown field,
	// both refused by the codec (invalid_argument).
	for _, body := range []string{`{"saleId":"s","quantity":0}`, `{"saleId":"s","Quantity":2}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/surge.v1.SaleService/Purchase", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-User-ID", "alice")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %s, want 400", body, resp.Status)
		}
	}
	// gRPC: a message over the bound (resource_exhausted, the code in a
	// trailer).
	c := surgev1connect.NewSaleServiceClient(h2cClient(), srv.URL, connect.WithGRPC())
	r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "s", IdempotencyKey: strings.Repeat("k", surgehttp.MaxSaleBody+1)})
	r.Header().Set("X-User-ID", "bob")
	if _, err := c.Purchase(ctx, r); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("a message over the bound: %v, want resource_exhausted", err)
	}

	after := scrapedOutcomes(t, srv.URL)
	if got := after["invalid_request"] - before["invalid_request"]; got != 2 {
		t.Errorf("surge_purchases_total{outcome=\"invalid_request\"} rose by %v, want 2", got)
	}
	if got := after["too_large"] - before["too_large"]; got != 1 {
		t.Errorf("surge_purchases_total{outcome=\"too_large\"} rose by %v, want 1", got)
	}
}

// panickingPurchases is the real engine whose purchases hit a bug.
type panickingPurchases struct{ *engine.Engine }

func (panickingPurchases) Purchase(context.Context, engine.PurchaseRequest) (surge.Outcome, error) {
	panic("a bug in the purchase path")
}

// A purchase over gRPC whose handling panics is answered a 500 by the
// API's last-resort recover: it counts as outcome internal, as over HTTP.
func TestPanickingGRPCPurchaseCountsAsInternal(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, log := meteredEngine(t, reg)
	svc := panickingPurchases{eng}
	g := rpc.New(svc, rpc.Config{Logger: log})
	api := surgehttp.New(svc, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount, Gatherer: reg})
	srv := httptest.NewServer(api)
	defer srv.Close()
	createSale(t, srv.URL, "buggy", 5)
	c := surgev1connect.NewSaleServiceClient(srv.Client(), srv.URL)
	r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "buggy"})
	r.Header().Set("X-User-ID", "alice")
	if _, err := c.Purchase(ctx, r); err == nil {
		t.Fatal("a panicking purchase succeeded")
	}
	if got := scrapedOutcomes(t, srv.URL)["internal"]; got != 1 {
		t.Errorf(`surge_purchases_total{outcome="internal"} = %v after a panicking purchase, want 1`, got)
	}
}
