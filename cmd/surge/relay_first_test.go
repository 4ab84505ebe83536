package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestRelayFiguresBeforeServing: a node restarted (or upgraded) with order
// events waiting reported surge_outbox_oldest_age_seconds 0 to a scrape
// landing before its relay's first read of the outbox, which reset
// SurgeOrderEventsDelayed's for: window at every restart. The first read
// is made before startRelay returns, so before the listener serves.
func TestRelayFiguresBeforeServing(t *testing.T) {
	st, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Events an hour old, left by the node before its restart (NATS down
	// since: the relay below cannot publish them either).
	then := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	id, name, stock, limit, hold := "s", "Sale", int64(10), int64(2), int64(7200)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, then)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSale(t.Context(), sl); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Reserve(t.Context(), id, []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(then)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		reg := prometheus.NewRegistry()
		stop, err := startRelay("nats://127.0.0.1:1", "test", time.Minute, st, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		// The first scrape, at once.
		age := gathered(t, reg, "surge_outbox_oldest_age_seconds")
		stop(t.Context())
		if age < 3000 {
			t.Fatalf("surge_outbox_oldest_age_seconds scraped as the relay started, events an hour old waiting: %v; want about 3600", age)
		}
	}
}

// gathered is the value of the single-series gauge name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}
