package http_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

// benchAPI returns the API over a real engine and store, with one sale.
func benchAPI(b *testing.B, stock int64) (http.Handler, *engine.Engine, *sqlite.Store) {
	return benchAPIOn(b, stock, nil)
}

// benchAPIOn is benchAPI with the engine and the store counting on reg
// (nil: nothing counts, as in the benchmarks that pin the bare cost).
func benchAPIOn(b *testing.B, stock int64, reg *prometheus.Registry) (http.Handler, *engine.Engine, *sqlite.Store) {
	b.Helper()
	ctx := context.Background()
	var m *metrics.Metrics
	opts := sqlite.Options{}
	if reg != nil {
		var err error
		if m, err = metrics.New(reg, version.Info{Version: "bench"}); err != nil {
			b.Fatal(err)
		}
		opts.Metrics = reg
	}
	st, err := sqlite.Open(ctx, b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Config{Logger: slog.New(slog.DiscardHandler), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close(); st.Close() })
	id, name := "bench", "bench"
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		b.Fatal(err)
	}
	return surgehttp.New(eng, surgehttp.Config{AdminToken: "admin", InsecureUserHeader: true, Logger: slog.New(slog.DiscardHandler)}), eng, st
}

// minimal is the yardstick: the least a net/http handler can do for the
// same request.
func minimal() http.Handler {
	body := []byte(`{"order":{"id":"o_0000000000000000000a","sale_id":"bench","user_id":"u1","quantity":1,"status":"reserved","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:15:00.000Z"}}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	})
	return mux
}

// serve drives h with purchase requests from parallel goroutines, each
// request from a new buyer, and checks every answer has the wanted status.
func serve(b *testing.B, h http.Handler, want int) { serveBody(b, h, want, `{"quantity":1}`) }

// serveBody is serve with another purchase body.
func serveBody(b *testing.B, h http.Handler, want int, body string) {
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := "u" + strconv.FormatInt(n.Add(1), 10)
			r := httptest.NewRequest(http.MethodPost, "/v1/sales/bench/purchases", strings.NewReader(body))
			r.Header.Set("X-User-ID", u)
			r.Header.Set("Idempotency-Key", u)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != want {
				b.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkHandler compares, in one run, the purchase handler on the
// sold-out and the reserve path with a minimal handler. The reserve path
// includes the fsync of every group commit, so it only batches well with
// many goroutines: SetParallelism raises them.
func BenchmarkHandler(b *testing.B) {
	b.Run("minimal", func(b *testing.B) {
		serve(b, minimal(), http.StatusCreated)
	})
	b.Run("sold-out", func(b *testing.B) {
		h, eng, _ := benchAPI(b, 1)
		if out, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: "bench", Purchase: surge.Purchase{UserID: "first", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
			b.Fatalf("first purchase: %v %v", out.Code, err)
		}
		serve(b, h, http.StatusConflict)
	})
	// A body quickQuantity leaves to the strict decoder: the cost of the
	// slow path, still on a sold-out sale so that no commit hides it.
	b.Run("sold-out-slow-body", func(b *testing.B) {
		h, eng, _ := benchAPI(b, 1)
		if out, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: "bench", Purchase: surge.Purchase{UserID: "first", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
			b.Fatalf("first purchase: %v %v", out.Code, err)
		}
		serveBody(b, h, http.StatusConflict, `{"quant\u0069ty":1}`)
	})
	b.Run("reserve", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		h, _, _ := benchAPIOn(b, surge.MaxStock, reg)
		b.SetParallelism(128)
		serve(b, h, http.StatusCreated)
		stats, err := metrics.Stats(reg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(stats["mean_batch"].(float64), "mean_batch")
		b.ReportMetric(stats["store"].(map[string]any)["mean_rows_per_commit"].(float64), "rows/fsync")
	})
}
