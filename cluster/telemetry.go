package cluster

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// The cluster store's metrics (docs/observability.md). Their names and
// labels are a contract, like package metrics' ones.
const (
	breakerStateName       = "surge_breaker_state"
	leaderName             = "surge_cluster_leader"
	dependencyDurationName = "surge_dependency_duration_seconds"
	sweptName              = "surge_cluster_swept_orders_total"
	rebuildsName           = "surge_cluster_rebuilds_total"
)

// dependencyBuckets, in seconds: from a Redis call on loopback (~100 µs)
// to one that waits out the call timeout (2 s).
var dependencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// newDependencyDurations makes surge_dependency_duration_seconds; it is
// registered with the store's other collectors (register), once the
// store opened.
func newDependencyDurations() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    dependencyDurationName,
		Help:    "Duration of each call to a dependency of cluster mode: dependency redis (op: the command, pipeline, dial) or postgres (op: the statement's first keyword, batch, connect).",
		Buckets: dependencyBuckets,
	}, []string{"dependency", "op"})
}

// observer returns the timing callback of one dependency, nil without
// metrics.
func observer(h *prometheus.HistogramVec, dependency string) func(op string, d time.Duration) {
	if h == nil {
		return nil
	}
	return func(op string, d time.Duration) { h.WithLabelValues(dependency, op).Observe(d.Seconds()) }
}

// instrument adds tracing and timing to the store's clients.
func instrument(cfg Config, rc redis.Client, durations *prometheus.HistogramVec) error {
	return redis.Instrument(rc, cfg.Tracing, observer(durations, "redis"))
}

// postgresOptions are the PostgreSQL options of cfg.
func postgresOptions(cfg Config, durations *prometheus.HistogramVec) postgres.Options {
	return postgres.Options{Schema: cfg.Schema, Tracing: cfg.Tracing, Observe: observer(durations, "postgres"), Events: cfg.Events,
		Logger: cfg.Logger.With("node", cfg.NodeID)}
}

// register puts the store's collectors on cfg.Metrics: the dependency
// durations, the breakers' states and the leader gauge, both read at
// scrape time, the counts of PostgreSQL commits of orders, and the
// leader's repairs: the orders its sweep gave back, the sales it rebuilt.
func (s *Store) register(durations *prometheus.HistogramVec) error {
	reg := s.cfg.Metrics
	if reg == nil {
		return nil
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: leaderName,
		Help: "1 while this node holds the leader's lease (expiry, rebuilds), else 0.",
	}, func() float64 {
		if s.Leader() {
			return 1
		}
		return 0
	})
	s.commits = metrics.NewCommits()
	s.swept = prometheus.NewCounter(prometheus.CounterOpts{
		Name: sweptName,
		Help: "Orders PostgreSQL had ended (cancelled, expired) whose units Redis still held, given back by this node's sweep as leader: a node died, or lost PostgreSQL's answer, between ending them and releasing them.",
	})
	s.rebuilds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: rebuildsName,
		Help: "Sales whose live state this node rebuilt in Redis from PostgreSQL as leader: Redis lost or rolled back state, a release did not reach Redis, or reservations never reached PostgreSQL.",
	})
	cs := []prometheus.Collector{durations, breakers{s}, leader, s.commits, s.swept, s.rebuilds}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	return nil
}

// breakers collects surge_breaker_state from the breakers themselves.
type breakers struct{ s *Store }

var breakerStateDesc = prometheus.NewDesc(breakerStateName,
	"State of the circuit breaker in front of a dependency: 0 closed, 1 half-open, 2 open.", []string{"dependency"}, nil)

func (b breakers) Describe(ch chan<- *prometheus.Desc) { ch <- breakerStateDesc }

func (b breakers) Collect(ch chan<- prometheus.Metric) {
	for _, cb := range []*gobreaker.CircuitBreaker[struct{}]{b.s.rcb, b.s.pcb} {
		ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, breakerValue(cb.State()), cb.Name())
	}
}

// breakerValue is the metric's value of a state, spelled out rather than
// gobreaker's numbering, which the contract must not depend on.
func breakerValue(st gobreaker.State) float64 {
	switch st {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
