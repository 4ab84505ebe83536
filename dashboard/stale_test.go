package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
)

// TestClusterStaleFiguresSaySo: in cluster mode, while a node cannot
// refresh a sale's figures (Redis and PostgreSQL unreachable), GET
// /v1/sales/{id}, WatchSale and `surge sale list` flag them stale, but
// the dashboard showed them as current: an ON SALE badge and units that
// no longer moved, a sale frozen by an outage looking like one nobody
// buys. The feed must say which sales' figures are stale, as the API
// does, and stop saying so once they are refreshed.
func TestClusterStaleFiguresSaySo(t *testing.T) {
	ns := servicetest.Namespace(t)
	redisPx := servicetest.RedisProxy(t)
	pgURL, err := url.Parse(servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pgPx := servicetest.NewProxy(t, pgURL.Host)
	pgURL.Host = pgPx.Addr
	quiet := slog.New(slog.DiscardHandler)
	st, err := func() (*cluster.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return cluster.Open(ctx, "redis://"+redisPx.Addr+"/0", pgURL.String(), cluster.Config{Prefix: ns, Schema: ns, CallTimeout: time.Second, Logger: quiet})
	}()
	if err != nil {
		t.Fatalf("cluster.Open (are Redis and PostgreSQL up? run scripts/services.sh): %v", err)
	}
	// Figures refreshed every 50 ms: stale 150 ms after the last refresh
	// that worked.
	eng, err := engine.Open(context.Background(), st, engine.Config{Logger: quiet, SyncInterval: 50 * time.Millisecond, StoreTimeout: 2 * time.Second})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewSaleCollector(eng.SaleFigures))
	f := &feed{g: reg, window: defaultWindow, interval: 20 * time.Millisecond, maxSales: defaultMaxSales}

	const sale = "frozen"
	id, name, stock := sale, "Frozen", int64(10)
	if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	// feedStale is what the feed's JSON says of the sale, read by name.
	feedStale := func() bool {
		t.Helper()
		snap, err := f.snapshot(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(snap)
		var v struct {
			Sales []map[string]any `json:"sales"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		for _, s := range v.Sales {
			if s["id"] == sale {
				return s["stale"] == true
			}
		}
		t.Fatalf("no sale %s in the feed: %s", sale, b)
		return false
	}
	apiStale := func() bool {
		t.Helper()
		s, err := eng.Sale(sale)
		if err != nil {
			t.Fatal(err)
		}
		return s.Stale
	}
	// until waits for the API's and the feed's stale to be want.
	until := func(want bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(30 * time.Millisecond) {
			a := apiStale()
			if a == want && feedStale() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the API says stale %v, the feed says stale %v; want both %v", what, a, feedStale(), want)
			}
		}
	}
	until(false, "with Redis and PostgreSQL up")
	redisPx.Cut()
	pgPx.Cut()
	until(true, "with Redis and PostgreSQL cut off")
	redisPx.Restore()
	pgPx.Restore()
	until(false, "once they are back")
}
