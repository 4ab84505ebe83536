package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

const adminToken = "metrics-test-admin-token"

// serve runs the real API over an engine on a SQLite store in a temp dir,
// its metrics in reg, as the tests of this package scrape it.
func serve(t *testing.T, reg *prometheus.Registry, opts sqlite.Options) (*engine.Engine, *httptest.Server) {
	t.Helper()
	return serveOver(t, reg, opts, nil)
}

// serveOver is serve with the API over wrap of the engine (nil: the
// engine itself), for a test that makes it answer as it rarely does.
func serveOver(t *testing.T, reg *prometheus.Registry, opts sqlite.Options, wrap func(*engine.Engine) surgehttp.Service) (*engine.Engine, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	var svc surgehttp.Service = eng
	if wrap != nil {
		svc = wrap(eng)
	}
	srv := httptest.NewServer(surgehttp.New(svc, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Gatherer: reg}))
	t.Cleanup(srv.Close)
	return eng, srv
}

// TestScrapeAfterSpike sells a sale out to a crowd through the real API,
// engine and SQLite store, then scrapes /metrics: promtool finds nothing
// to report, and the contract series hold the spike's figures.
func TestScrapeAfterSpike(t *testing.T) {
	const stock, buyers = 100, 600
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, srv := serve(t, reg, sqlite.Options{Metrics: reg})
	reg.MustRegister(metrics.NewSaleCollector(eng.SaleFigures))
	id, name, n, one := "spike", "Spike", int64(stock), int64(1)
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &n, PerUserLimit: &one}); err != nil {
		t.Fatal(err)
	}

	statuses := make(map[int]int)
	winner := 0 // a buyer who got a 201
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/sales/spike/purchases", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d", i))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("k-%d", i))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusCreated {
				winner = i
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// One replay, one bad key, one unknown sale: counted apart.
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/v1/sales/spike/purchases", fmt.Sprintf("k-%d", winner), http.StatusCreated},
		{"/v1/sales/spike/purchases", "", http.StatusBadRequest},
		{"/v1/sales/nope/purchases", "k-x", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+c.path, nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d", winner))
		req.Header["Idempotency-Key"] = []string{c.key}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s with key %q: status %d, want %d", c.path, c.key, resp.StatusCode, c.want)
		}
	}

	// Without the admin token: 401.
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: status %d, want 401", resp.StatusCode)
	}
	body := scrape(t, srv.URL)
	promtool(t, body)

	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	reserved := value(t, fams, "surge_purchases_total", "spike", "outcome", "reserved")
	soldOut := value(t, fams, "surge_purchases_total", "spike", "outcome", "sold_out")
	if reserved != stock || int(reserved) != statuses[http.StatusCreated] {
		t.Errorf("reserved = %v, want the stock %d and the 201s %d", reserved, stock, statuses[http.StatusCreated])
	}
	if soldOut != float64(statuses[http.StatusConflict]) || soldOut == 0 {
		t.Errorf("sold_out = %v, want the 409s %d (and some)", soldOut, statuses[http.StatusConflict])
	}
	for outcome, want := range map[string]float64{"replayed": 1, "invalid_request": 1} {
		if got := value(t, fams, "surge_purchases_total", "spike", "outcome", outcome); got != want {
			t.Errorf("%s = %v, want %v", outcome, got, want)
		}
	}
	if got := value(t, fams, "surge_purchases_total", "", "outcome", "sale_not_found"); got != 1 {
		t.Errorf(`sale_not_found under sale="" = %v, want 1`, got)
	}
	if got := value(t, fams, "surge_sale_remaining_units", "spike", "", ""); got != 0 {
		t.Errorf("remaining = %v, want 0", got)
	}
	if got := value(t, fams, "surge_sale_stock_units", "spike", "", ""); got != stock {
		t.Errorf("stock = %v, want %d", got, stock)
	}
	if got := value(t, fams, "surge_queue_depth", "spike", "", ""); got != 0 {
		t.Errorf("queue depth after the spike = %v, want 0", got)
	}
	// Every answer has its latency, and every reservation went through a
	// store call.
	answers := uint64(buyers + 3)
	if h := histogram(t, fams, "surge_purchase_duration_seconds", "spike"); h.GetSampleCount() != answers-1 {
		t.Errorf("latencies of sale spike: %d, want %d", h.GetSampleCount(), answers-1)
	}
	if h := histogram(t, fams, "surge_batch_size", ""); h.GetSampleSum() < stock || h.GetSampleCount() == 0 {
		t.Errorf("batches: %d carrying %v purchases, want at least %d purchases", h.GetSampleCount(), h.GetSampleSum(), stock)
	}
	if h := histogram(t, fams, "surge_store_commit_duration_seconds", ""); h.GetSampleCount() == 0 {
		t.Error("no store commit was timed")
	}
	commits := value(t, fams, "surge_store_commits_total", "", "", "")
	rows := value(t, fams, "surge_store_committed_rows_total", "", "", "")
	if commits == 0 || rows < stock {
		t.Errorf("group commit: %v commits of %v rows, want some, with at least the %d orders", commits, rows, stock)
	}
	// /debug/stats is a view of the same registry: its figures are these.
	stats, err := metrics.Stats(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := histogram(t, fams, "surge_batch_size", "")
	eng0 := stats["engine"].(map[string]int64)
	st0 := stats["store"].(map[string]any)
	if eng0["Batches"] != int64(h.GetSampleCount()) || eng0["Purchases"] != int64(h.GetSampleSum()) ||
		stats["mean_batch"] != h.GetSampleSum()/float64(h.GetSampleCount()) ||
		st0["Commits"] != int64(commits) || st0["Rows"] != int64(rows) || st0["mean_rows_per_commit"] != rows/commits {
		t.Errorf("/debug/stats %v, want the registry's batches %d of %v purchases, %v commits of %v rows",
			stats, h.GetSampleCount(), h.GetSampleSum(), commits, rows)
	}
	for _, name := range []string{"surge_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// TestCountingAllocs: counting an answer, as the purchase handler does
// (the sale's series from the engine, an outcome, a latency), allocates
// nothing.
func TestCountingAllocs(t *testing.T) {
	ctx := context.Background()
	m, err := metrics.New(prometheus.NewRegistry(), version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Config{Logger: slog.New(slog.DiscardHandler), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	id, name, n := "s", "S", int64(1)
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &n}); err != nil {
		t.Fatal(err)
	}
	for _, sale := range []string{"s", "unknown"} {
		if a := testing.AllocsPerRun(1000, func() {
			eng.Meter(sale).Answered("sold_out", false, time.Millisecond)
		}); a != 0 {
			t.Errorf("sale %s: %.1f allocations per counted answer, want 0", sale, a)
		}
	}
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d, %v: %s", resp.StatusCode, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want the text format", ct)
	}
	return body
}

// promtool runs `promtool check metrics` on a scrape: it must report
// nothing. Without promtool the test skips, except under CI, where it
// fails (scripts/services.sh installs Debian's prometheus package).
func promtool(t *testing.T, body []byte) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found: install Debian's prometheus package (scripts/services.sh does)"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// value is the value of the counter or gauge of family name with sale
// label sale (and label k = v when k is set).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name, sale, k, v string) float64 {
	t.Helper()
	for _, m := range find(t, fams, name, sale, k, v) {
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("%s{sale=%q,%s=%q} missing", name, sale, k, v)
	return 0
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name, sale string) *dto.Histogram {
	t.Helper()
	for _, m := range find(t, fams, name, sale, "", "") {
		if m.Histogram != nil {
			return m.Histogram
		}
	}
	t.Fatalf("histogram %s{sale=%q} missing", name, sale)
	return nil
}

// find returns the metrics of family name whose sale label (absent counts
// as "") and label k (when set) match.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name, sale, k, v string) []*dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("family %s missing", name)
	}
	var out []*dto.Metric
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["sale"] == sale && (k == "" || labels[k] == v) {
			out = append(out, m)
		}
	}
	return out
}

// panickingPurchases is the real engine whose purchases hit a bug: they
// panic, as a nil dereference deep in the pipeline would.
type panickingPurchases struct{ *engine.Engine }

func (panickingPurchases) Purchase(context.Context, engine.PurchaseRequest) (surge.Outcome, error) {
	panic("a bug in the purchase path")
}

// A purchase whose handling panics is answered 500 internal by the API's
// last-resort recover: it must count as outcome internal, the one
// SurgePurchaseInternalErrors pages on, read from the real /metrics.
func TestPanickingPurchaseCountsAsInternal(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, srv := serveOver(t, reg, sqlite.Options{}, func(e *engine.Engine) surgehttp.Service { return panickingPurchases{e} })
	id, name, n := "buggy", "Buggy", int64(5)
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &n}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/sales/buggy/purchases", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a panicking purchase: status %d, want 500", resp.StatusCode)
	}

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, mm := range fams["surge_purchases_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range mm.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["sale"] == "buggy" && labels["outcome"] == "internal" {
			got = mm.GetCounter().GetValue()
		}
	}
	if got != 1 {
		t.Errorf(`surge_purchases_total{sale="buggy",outcome="internal"} = %v after a 500, want 1`, got)
	}
}
