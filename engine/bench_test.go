package engine

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

// benchEngine opens an engine over a fresh SQLite store in b.TempDir(),
// both counting on reg.
func benchEngine(b *testing.B, cfg Config, reg *prometheus.Registry, opts ...sqlite.Options) (*Engine, *sqlite.Store) {
	b.Helper()
	ctx := context.Background()
	m, err := metrics.New(reg, version.Info{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var o sqlite.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Metrics = reg
	st, err := sqlite.Open(ctx, b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Metrics = m
	e, err := Open(ctx, st, cfg)
	if err != nil {
		_ = st.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Close()
		_ = st.Close()
	})
	return e, st
}

// BenchmarkPurchaseSoldOut measures the lock-free sold-out decision that a
// spike meets once the stock is gone.
func BenchmarkPurchaseSoldOut(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  string
	}{
		{"no_key", ""},
		{"key", "retry-0123456789"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, _ := benchEngine(b, Config{}, prometheus.NewRegistry())
			ctx := context.Background()
			if _, err := e.CreateSale(ctx, input("s", 1, 1)); err != nil {
				b.Fatal(err)
			}
			if out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "winner", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
				b.Fatalf("first purchase: (%+v, %v)", out, err)
			}
			var bad atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				p := surge.Purchase{UserID: "loser", IdempotencyKey: bc.key, Quantity: 1}
				for pb.Next() {
					if out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: p}); err != nil || out.Code != surge.CodeSoldOut {
						bad.Add(1)
					}
				}
			})
			b.StopTimer()
			if n := bad.Load(); n > 0 {
				b.Fatalf("%d purchases were not sold_out", n)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkPurchaseReserve measures committed reservations: each one is
// durable (group-committed to SQLite) before it is answered. Batches only
// form under concurrency, hence the many goroutines. Each commit writes the
// order events too, as a node with --nats-url does.
func BenchmarkPurchaseReserve(b *testing.B) { benchReserve(b, sqlite.Options{}) }

// BenchmarkPurchaseReserveNoEvents is BenchmarkPurchaseReserve as surge
// serve runs by default: no relay, no order events written.
func BenchmarkPurchaseReserveNoEvents(b *testing.B) { benchReserve(b, sqlite.Options{NoEvents: true}) }

func benchReserve(b *testing.B, opts sqlite.Options) {
	reg := prometheus.NewRegistry()
	e, _ := benchEngine(b, Config{InboxSize: 1 << 16}, reg, opts)
	ctx := context.Background()
	if _, err := e.CreateSale(ctx, input("s", int64(max(b.N, 1)), 1)); err != nil {
		b.Fatal(err)
	}
	var (
		next atomic.Int64
		bad  atomic.Int64
	)
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p := surge.Purchase{UserID: "u" + strconv.FormatInt(next.Add(1), 36), Quantity: 1}
			if out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: p}); err != nil || out.Code != surge.CodeReserved {
				bad.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d purchases were not reserved", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
	// Over the whole run (the sale's creation is one commit of one row).
	stats, err := metrics.Stats(reg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(stats["mean_batch"].(float64), "mean_batch")
	b.ReportMetric(stats["store"].(map[string]any)["mean_rows_per_commit"].(float64), "rows/fsync")
}
