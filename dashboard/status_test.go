package dashboard

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

// TestSaleStatusFollowsTheSale: the page's badge said ON SALE for every
// sale with units left, a paused, ended or upcoming one included, since
// the feed knew nothing but the units. Over the real engine and store,
// the feed gives each sale's status as GET /v1/sales/{id} reports it.
func TestSaleStatusFollowsTheSale(t *testing.T) {
	ctx := context.Background()
	eng, reg := engineWithFigures(t)
	_, srv := newTestServer(t, Config{Gatherer: reg, Interval: 20 * time.Millisecond})

	create := func(id string, stock int64, startsAt *time.Time) {
		t.Helper()
		name := id
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: startsAt}); err != nil {
			t.Fatal(err)
		}
	}
	// wantStatus waits for the feed to show sale id with status want.
	wantStatus := func(id, want string) {
		t.Helper()
		var got *string
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			got = nil
			for _, s := range firstSnapshot(t, srv.Client(), srv.URL, testToken).Sales {
				if s.ID == id {
					got = s.Status
				}
			}
			if got != nil && *got == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		shown := "null"
		if got != nil {
			shown = *got
		}
		t.Errorf("sale %s: the feed's status is %s, want %s", id, shown, want)
	}

	later := time.Now().Add(time.Hour)
	create("soon", 5, &later)
	create("live", 5, nil)
	create("paused", 5, nil)
	create("ended", 5, nil)
	create("gone", 1, nil)
	yes, now := true, time.Now()
	if _, err := eng.UpdateSale(ctx, "paused", surge.SalePatch{Paused: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.UpdateSale(ctx, "ended", surge.SalePatch{EndsAt: &now}); err != nil {
		t.Fatal(err)
	}
	if out, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "gone", Purchase: surge.Purchase{UserID: "alice", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("buying the last unit: %v %v", out.Code, err)
	}
	for id, want := range map[string]string{"soon": "upcoming", "live": "live", "paused": "paused", "ended": "ended", "gone": "sold_out"} {
		wantStatus(id, want)
	}
}

// engineWithFigures opens the real engine over a real SQLite store, its
// sales' figures in reg as /metrics serves them to the page.
func engineWithFigures(t *testing.T) (*engine.Engine, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(context.Background(), st, engine.Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	reg.MustRegister(metrics.NewSaleCollector(eng.SaleFigures))
	return eng, reg
}
