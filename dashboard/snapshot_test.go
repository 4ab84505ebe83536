package dashboard

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/metrics"
)

// contract is a registry filled by the test under the contract names, as
// the metrics package exports them.
type contract struct {
	reg       *prometheus.Registry
	purchases *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	stock     *prometheus.GaugeVec
	remaining *prometheus.GaugeVec
	queue     *prometheus.GaugeVec
	room      *prometheus.GaugeVec
	admitted  *prometheus.CounterVec
	batch     prometheus.Histogram
	breaker   *prometheus.GaugeVec
	leader    prometheus.Gauge
}

func newContract(t *testing.T, cluster bool) *contract {
	t.Helper()
	c := &contract{
		reg:       prometheus.NewRegistry(),
		purchases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: mPurchases, Help: "h"}, []string{"sale", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: mDuration, Help: "h",
			Buckets: []float64{.001, .01, .1, 1}}, []string{"sale"}),
		stock:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mStock, Help: "h"}, []string{"sale"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mRemaining, Help: "h"}, []string{"sale"}),
		queue:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mQueueDepth, Help: "h"}, []string{"sale"}),
		room:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mRoomLength, Help: "h"}, []string{"sale"}),
		admitted:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: mRoomAdmitted, Help: "h"}, []string{"sale"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: mBatch, Help: "h",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mBreaker, Help: "h"}, []string{"dependency"}),
		leader:  prometheus.NewGauge(prometheus.GaugeOpts{Name: mClusterLeader, Help: "h"}),
	}
	cs := []prometheus.Collector{c.purchases, c.duration, c.stock, c.remaining, c.queue, c.room, c.admitted, c.batch,
		// Metrics the dashboard ignores are in the same registry.
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "surge_build_info", Help: "h"})}
	if cluster {
		cs = append(cs, c.breaker, c.leader)
	}
	for _, col := range cs {
		if err := c.reg.Register(col); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func near(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: null, want %g", what, want)
	} else if math.Abs(*got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s: %g, want %g", what, *got, want)
	}
}

func TestSnapshotFromRegistry(t *testing.T) {
	c := newContract(t, true)
	f := &feed{g: c.reg, window: 5 * time.Second, interval: time.Second, maxSales: defaultMaxSales}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	c.stock.WithLabelValues("phone").Set(1000)
	c.remaining.WithLabelValues("phone").Set(1000)
	c.purchases.WithLabelValues("phone", "sold_out").Add(7)
	c.purchases.WithLabelValues("phone", "reserved").Add(0)
	c.admitted.WithLabelValues("phone").Add(10)
	c.room.WithLabelValues("phone").Set(300)
	c.breaker.WithLabelValues("redis").Set(0)
	c.breaker.WithLabelValues("postgres").Set(2)
	c.leader.Set(1)
	first, err := f.snapshot(t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Sales) != 1 || first.Sales[0].PurchasesPerSecond != nil || first.Batch.Mean != nil {
		t.Fatalf("first snapshot has rates before a second gather: %+v", first)
	}

	// One second: 100 reserved (50 at ≤1 ms, 49 at ≤10 ms, 1 at ≤100 ms),
	// 400 sold out; 4 batches of 25.
	for i := range 100 {
		c.purchases.WithLabelValues("phone", "reserved").Inc()
		switch {
		case i < 50:
			c.duration.WithLabelValues("phone").Observe(0.0005)
		case i < 99:
			c.duration.WithLabelValues("phone").Observe(0.005)
		default:
			c.duration.WithLabelValues("phone").Observe(0.05)
		}
	}
	c.purchases.WithLabelValues("phone", "sold_out").Add(400)
	for range 4 {
		c.batch.Observe(25)
	}
	c.remaining.WithLabelValues("phone").Set(900)
	c.queue.WithLabelValues("phone").Set(12)
	c.admitted.WithLabelValues("phone").Add(20)

	// A stream asking again within half an interval gets the same one.
	if again, _ := f.snapshot(t0.Add(100 * time.Millisecond)); again.Time != first.Time {
		t.Fatalf("a snapshot 100 ms later gathered again")
	}
	s, err := f.snapshot(t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Sales) != 1 {
		t.Fatalf("sales: %+v", s.Sales)
	}
	p := s.Sales[0]
	if p.ID != "phone" || *p.Stock != 1000 || *p.Remaining != 900 || *p.QueueDepth != 12 || *p.WaitingRoomLength != 300 || *p.AdmittedTotal != 30 {
		t.Errorf("sale figures: %+v", p)
	}
	near(t, "purchases/s", p.PurchasesPerSecond, 500)
	near(t, "admitted/s", p.AdmittedPerSecond, 20)
	if len(p.Outcomes) != 2 || p.Outcomes[0].Name != "reserved" || p.Outcomes[1].Name != "sold_out" {
		t.Fatalf("outcomes: %+v", p.Outcomes)
	}
	near(t, "reserved/s", p.Outcomes[0].PerSecond, 100)
	near(t, "sold_out/s", p.Outcomes[1].PerSecond, 400)
	if p.Outcomes[1].Total != 407 {
		t.Errorf("sold_out total %g, want 407", p.Outcomes[1].Total)
	}
	// histogram_quantile: rank 50 is the top of the first bucket (1 ms);
	// rank 99 is the last of the second (10 ms).
	near(t, "p50", p.LatencyP50, 0.001)
	near(t, "p99", p.LatencyP99, 0.01)
	near(t, "batch mean", s.Batch.Mean, 25)
	near(t, "batch p99", s.Batch.P99, 16+16*3.96/4) // interpolated in (16, 32]
	near(t, "batches/s", s.Batch.PerSecond, 4)
	if len(s.Breakers) != 2 || s.Breakers[0] != (Breaker{"postgres", "open"}) || s.Breakers[1] != (Breaker{"redis", "closed"}) {
		t.Errorf("breakers: %+v", s.Breakers)
	}
	if s.Leader == nil || !*s.Leader {
		t.Errorf("leader: %v", s.Leader)
	}

	// A quiet second: rates fall to 0 and the window still holds the
	// latencies of the second before.
	s, _ = f.snapshot(t0.Add(2 * time.Second))
	near(t, "quiet purchases/s", s.Sales[0].PurchasesPerSecond, 0)
	near(t, "window p50", s.Sales[0].LatencyP50, 0.001)
	// Past the window, no observation is left: null, not a stale figure.
	for i := 3; i <= 8; i++ {
		s, _ = f.snapshot(t0.Add(time.Duration(i) * time.Second))
	}
	if s.Sales[0].LatencyP50 != nil || s.Batch.Mean != nil {
		t.Errorf("p50 %v and batch mean %v after the window, want null", s.Sales[0].LatencyP50, s.Batch.Mean)
	}
	near(t, "idle batches/s", s.Batch.PerSecond, 0)
	if len(f.history) > 7 {
		t.Errorf("history holds %d samples for a 5 s window at 1/s", len(f.history))
	}
}

// TestSnapshotEmbedded: without the cluster metrics there is no cluster
// section, and an empty registry gives an empty list, not null.
func TestSnapshotEmbedded(t *testing.T) {
	c := newContract(t, false)
	f := &feed{g: c.reg, window: 5 * time.Second, interval: time.Second, maxSales: defaultMaxSales}
	s, err := f.snapshot(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Sales == nil || len(s.Sales) != 0 || s.Breakers != nil || s.Leader != nil {
		t.Errorf("snapshot of an idle embedded node: %+v", s)
	}
}

func TestQuantile(t *testing.T) {
	h := hist{bounds: []float64{1, 2, 4}, cum: []float64{0, 10, 10}, count: 20}
	near(t, "p25 inside (1,2]", h.quantile(0.25), 1.5)
	near(t, "p99 in +Inf", h.quantile(0.99), 4) // the top finite bound
	if (hist{bounds: []float64{1}, cum: []float64{0}}).quantile(0.5) != nil {
		t.Error("quantile of nothing observed is not null")
	}
	// A restarted counter (fewer than before) is its own delta.
	base := hist{bounds: []float64{1}, cum: []float64{50}, count: 50}
	if d := h.minus(base); d.count != 20 {
		t.Errorf("delta over a reset: %+v", d)
	}
	if d := (hist{bounds: []float64{1}, cum: []float64{60}, count: 70}).minus(base); d.count != 20 || d.cum[0] != 10 {
		t.Errorf("delta: %+v", d)
	}
}

// TestSnapshotBounded: at most maxSales sales go out, the active ones
// kept over idle, sold-out ones, in id order.
func TestSnapshotBounded(t *testing.T) {
	c := newContract(t, false)
	f := &feed{g: c.reg, window: 5 * time.Second, interval: time.Second, maxSales: 2}
	for _, id := range []string{"a", "b", "c", "d"} {
		c.stock.WithLabelValues(id).Set(10)
		c.remaining.WithLabelValues(id).Set(0)
	}
	c.remaining.WithLabelValues("c").Set(5) // unsold units
	t0 := time.Now()
	f.snapshot(t0)
	c.purchases.WithLabelValues("d", "sold_out").Inc() // active
	s, _ := f.snapshot(t0.Add(time.Second))
	if len(s.Sales) != 2 || s.Sales[0].ID != "c" || s.Sales[1].ID != "d" || s.HiddenSales != 2 {
		t.Errorf("bounded sales: %+v, hidden %d", s.Sales, s.HiddenSales)
	}
}

// TestRateNeedsThePreviousSample: a counter missing from the previous
// gather has no rate yet. metrics.SaleCollector leaves a sale's waiting
// room series out of a scrape whose line could not be counted (in cluster
// mode, Redis slow or down: engine.SaleFigures); when they come back, the
// admissions since the sale began are not admissions of the last second.
func TestRateNeedsThePreviousSample(t *testing.T) {
	var lineFails atomic.Bool
	admitted := int64(50_000)
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewSaleCollector(func(context.Context) []metrics.SaleFigures {
		// As engine.SaleFigures: WaitingRoom only when the line was counted.
		return []metrics.SaleFigures{{Sale: "drop", Stock: 1000, Remaining: 400,
			WaitingRoom: !lineFails.Load(), Waiting: 7000, Admitted: admitted}}
	}))
	f := &feed{g: reg, window: 5 * time.Second, interval: time.Second, maxSales: defaultMaxSales}
	t0 := time.Now()
	f.snapshot(t0)
	admitted += 100
	s, _ := f.snapshot(t0.Add(time.Second))
	near(t, "admitted/s", s.Sales[0].AdmittedPerSecond, 100)

	lineFails.Store(true) // one scrape without the line
	admitted += 100
	if s, _ = f.snapshot(t0.Add(2 * time.Second)); s.Sales[0].AdmittedPerSecond != nil || s.Sales[0].AdmittedTotal != nil {
		t.Errorf("admissions without the line: %v/s, total %v; want null", s.Sales[0].AdmittedPerSecond, s.Sales[0].AdmittedTotal)
	}
	lineFails.Store(false)
	admitted += 100
	s, _ = f.snapshot(t0.Add(3 * time.Second))
	if r := s.Sales[0].AdmittedPerSecond; r != nil && *r > 1000 {
		t.Errorf("admitted/s right after the line came back: %g (the whole total %d over one second); want null or about 100", *r, admitted)
	}
	admitted += 100
	s, _ = f.snapshot(t0.Add(4 * time.Second))
	near(t, "admitted/s once two samples hold the line again", s.Sales[0].AdmittedPerSecond, 100)
}
