package cluster_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/version"
)

// gather returns the registry's families by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// newMetrics is a registry of its own and the engine's metrics on it.
func newMetrics(t *testing.T) (*prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

// expiredCount is surge_order_transitions_total{to="expired"} of sale on
// reg, or absent when it has no such series.
func expiredCount(t *testing.T, reg *prometheus.Registry, sale string, absent float64) float64 {
	t.Helper()
	for _, m := range gather(t, reg)["surge_order_transitions_total"].GetMetric() {
		if label(m, "sale") == sale && label(m, "to") == metrics.ToExpired {
			return m.GetCounter().GetValue()
		}
	}
	return absent
}

// label returns the value of a metric's label.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetrics: the store's collectors report the leader, each breaker's
// state (2 once Redis is cut off), and the durations of Redis and
// PostgreSQL calls by op.
func TestMetrics(t *testing.T) {
	ns := namespace(t)
	px := servicetest.RedisProxy(t)
	reg := prometheus.NewRegistry()
	s := openStoreAt(t, "redis://"+px.Addr+"/0", postgresURL(), cluster.Config{Prefix: ns, Schema: ns, Metrics: reg,
		Interval: 50 * time.Millisecond, BreakerOpen: time.Minute})
	t.Cleanup(func() { s.Close() })
	mustSale(t, s, "m", 10, 1)
	if out, _, err := reserve(s, "m", surge.Purchase{UserID: "u", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %v %v", out, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.Leader() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	m := gather(t, reg)
	if g := m["surge_cluster_leader"].GetMetric()[0].GetGauge().GetValue(); g != 1 {
		t.Errorf("surge_cluster_leader = %v on the only node, want 1", g)
	}
	states := func() map[string]float64 {
		out := map[string]float64{}
		for _, x := range gather(t, reg)["surge_breaker_state"].GetMetric() {
			out[label(x, "dependency")] = x.GetGauge().GetValue()
		}
		return out
	}
	if st := states(); st["redis"] != 0 || st["postgres"] != 0 || len(st) != 2 {
		t.Errorf("breaker states %v, want redis and postgres closed (0)", st)
	}
	ops := map[string]uint64{}
	for _, x := range m["surge_dependency_duration_seconds"].GetMetric() {
		ops[label(x, "dependency")+" "+label(x, "op")] += x.GetHistogram().GetSampleCount()
	}
	for _, want := range []string{"redis evalsha", "postgres insert", "postgres select"} {
		if ops[want] == 0 {
			t.Errorf("no surge_dependency_duration_seconds samples of %q: %v", want, ops)
		}
	}

	px.Cut()
	for i := 0; i < 10 && states()["redis"] != 2; i++ {
		_, _, _ = reserve(s, "m", surge.Purchase{UserID: "v", Quantity: 1})
	}
	if st := states(); st["redis"] != 2 {
		t.Errorf("breaker states %v after Redis was cut off, want redis open (2)", st)
	}
}
