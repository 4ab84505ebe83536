package cluster_test

import (
	"fmt"
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

// TestIdleBreakerClosesAfterRecovery: a node that does not lead and gets
// no purchase makes no Redis call of its own. After Redis came back, its
// breaker must still close: one left half-open reports
// surge_breaker_state 1 for good, and SurgeDependencyDown (never closed
// for a minute) pages that Redis is down while it serves.
func TestIdleBreakerClosesAfterRecovery(t *testing.T) {
	ns := namespace(t)
	lead := openStoreAt(t, redisURL(), postgresURL(), cluster.Config{Prefix: ns, Schema: ns, Interval: 100 * time.Millisecond})
	t.Cleanup(func() { lead.Close() })
	eventually(t, 20*time.Second, "a leader", func() error {
		if !lead.Leader() {
			return fmt.Errorf("the first node does not lead")
		}
		return nil
	})
	mustSale(t, lead, "idle", 10, 1)
	px := servicetest.RedisProxy(t)
	reg := prometheus.NewRegistry()
	s := openStoreAt(t, "redis://"+px.Addr+"/0", postgresURL(), cluster.Config{Prefix: ns, Schema: ns, Metrics: reg,
		Interval: 100 * time.Millisecond, BreakerOpen: 200 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	redisState := func() float64 {
		for _, x := range gather(t, reg)["surge_breaker_state"].GetMetric() {
			if label(x, "dependency") == "redis" {
				return x.GetGauge().GetValue()
			}
		}
		return -1
	}
	px.Cut()
	for i := 0; i < 50 && redisState() != 2; i++ {
		_, _, _ = reserve(s, "idle", surge.Purchase{UserID: "v", Quantity: 1})
	}
	if st := redisState(); st != 2 {
		t.Fatalf("surge_breaker_state{dependency=\"redis\"} = %v with Redis cut off, want 2 (open)", st)
	}
	if s.Leader() {
		t.Fatal("the second node leads")
	}
	px.Restore()
	eventually(t, 15*time.Second, "the idle node's Redis breaker closed", func() error {
		if st := redisState(); st != 0 {
			return fmt.Errorf("surge_breaker_state{dependency=\"redis\"} = %v with Redis back and no purchase, want 0 (closed)", st)
		}
		return nil
	})
}
