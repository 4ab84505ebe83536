// Package metrics provides Surge's Prometheus collectors and the /metrics
// handler. Nothing here is global: cmd/surge makes one registry, New
// registers Surge's collectors on it, and whatever else exports metrics
// (the cluster store's dependencies, the dashboard) registers on or reads
// the same registry.
//
// The names and labels below are a contract with dashboards and alert
// rules outside the repository (docs/observability.md lists them): change
// none without saying so there.
//
// The purchase path pays for metrics with atomics only: each sale's
// series are made once, when the engine creates the sale (Metrics.Sale),
// and an answer adds to atomics of its own shard of them (Sale.Answered).
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/surgehq/surge/version"
)

// Metrics holds Surge's collectors. A nil *Metrics is valid and counts
// nothing, so tests and tools may run without a registry.
type Metrics struct {
	// surge_purchases_total{sale,outcome} and
	// surge_purchase_duration_seconds{sale} are the sales' own
	// (purchaseCollector).
	transitions *prometheus.CounterVec // surge_order_transitions_total{sale,to}
	batchSize   prometheus.Histogram   // surge_batch_size
	commit      prometheus.Histogram   // surge_store_commit_duration_seconds

	mu    sync.Mutex
	sales map[string]*Sale // one per sale id, made once
	// unknown counts purchases of sales this node does not serve
	// (unknown or archived ids) under sale="": a label per unknown id
	// would let anyone create series without end.
	unknown *Sale
}

// Latency buckets, in seconds: from a fast-path answer (tens of µs) to a
// purchase that waits out its timeout (10 s).
var latencyBuckets = [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New registers Surge's collectors on reg: those of the purchase path,
// surge_build_info (build is the binary's: version.Get()), and the Go
// runtime and process collectors.
func New(reg prometheus.Registerer, build version.Info) (*Metrics, error) {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "surge_order_transitions_total",
			Help: "Orders leaving the reserved state, by sale and new state (paid, cancelled, expired).",
		}, []string{"sale", "to"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "surge_batch_size",
			Help:    "Purchases per store call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "surge_store_commit_duration_seconds",
			Help:    "Duration of one store call deciding and committing a batch of purchases.",
			Buckets: latencyBuckets[:],
		}),
		sales: make(map[string]*Sale),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "surge_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "revision", "goversion"})
	info.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)
	for _, c := range []prometheus.Collector{
		purchaseCollector{m}, m.transitions, m.batchSize, m.commit, info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.unknown = m.newSale("")
	return m, nil
}

// Handler serves what g gathers in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// ObserveBatch records one store call: how many purchases it carried and
// how long it took.
func (m *Metrics) ObserveBatch(size int, took time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(size))
	m.commit.Observe(took.Seconds())
}
