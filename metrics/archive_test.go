package metrics_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
)

// TestArchivedSaleLeavesScrape: a sale that ended and was archived keeps
// no series on /metrics. Its counters were made with the sale and were
// never deleted, about 40 series a sale, so a shop running sale after
// sale grew every scrape without bound.
func TestArchivedSaleLeavesScrape(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng, srv := serve(t, reg, sqlite.Options{Metrics: reg})
	reg.MustRegister(metrics.NewSaleCollector(eng.SaleFigures))
	for _, id := range []string{"gone", "kept"} {
		name, n := "Sale "+id, int64(5)
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &n}); err != nil {
			t.Fatal(err)
		}
		// A paid and a cancelled order: every kind of series the sale has.
		for i, end := range []func(context.Context, string) (surge.Order, error){eng.Pay, eng.Cancel} {
			out, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: surge.Purchase{UserID: string(rune('a' + i)), Quantity: 1}})
			if err != nil || out.Code != surge.CodeReserved {
				t.Fatalf("purchase of %s: %+v, %v", id, out, err)
			}
			if _, err := end(ctx, out.Order.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := seriesOf(t, scrape(t, srv.URL), "gone"); n < 20 {
		t.Fatalf("sale gone has %d series on /metrics before it is archived; want its outcomes, latency, transitions and figures (the test counts wrongly)", n)
	}
	before := seriesOf(t, scrape(t, srv.URL), "kept")

	now := time.Now()
	if _, err := eng.UpdateSale(ctx, "gone", surge.SalePatch{EndsAt: &now}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Archive(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, srv.URL)
	if n := seriesOf(t, body, "gone"); n != 0 {
		t.Errorf("/metrics still has %d series of sale gone after it was archived; want none (an archived sale's series stay forever)", n)
	}
	if n := seriesOf(t, body, "kept"); n != before {
		t.Errorf("/metrics has %d series of the live sale kept after another was archived; want its %d", n, before)
	}
}

// seriesOf counts the series labelled sale=id in a scrape.
func seriesOf(t *testing.T, body []byte, id string) int {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "sale" && l.GetValue() == id {
					n++
				}
			}
		}
	}
	return n
}
