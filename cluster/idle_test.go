package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/surgehq/surge/cluster"
)

// calls counts the calls a store made to one dependency (its
// surge_dependency_duration_seconds observations), dials aside.
func calls(t *testing.T, reg *prometheus.Registry, dependency string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "surge_dependency_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			dep, op := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "dependency":
					dep = l.GetValue()
				case "op":
					op = l.GetValue()
				}
			}
			if dep == dependency && op != "dial" && op != "connect" {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// pastSales creates n sales past0 … past<n-1> in s, eight at a time.
func pastSales(t *testing.T, s *cluster.Store, n int) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			mustSale(t, s, fmt.Sprintf("past%d", i), 10, 1)
			return nil
		})
	}
	_ = g.Wait()
}

// The leader's round must cost about the same whatever the number of idle
// sales: it delays the next expiry of holds (and every repair) on the live
// sale. It cost about four Redis calls per sale, so 5,000 idle sales made
// a 1-second hold come back after 2.4 s.
func TestLeaderRoundIgnoresIdleSales(t *testing.T) {
	const idle = 2000
	ns := namespace(t)
	reg := prometheus.NewRegistry()
	// The loop runs its first round at Open, then waits an hour: the test
	// runs the rounds it measures itself (one at a time with the loop's).
	s := openStore(t, ns, cluster.Config{Interval: time.Hour, NoExpiry: true, Metrics: reg})
	defer s.Close()
	ctx := context.Background()
	mustSale(t, s, "live", 10, 1)
	round := func() (redisCalls, pgCalls uint64, took time.Duration) {
		t.Helper()
		r0, p0 := calls(t, reg, "redis"), calls(t, reg, "postgres")
		start := time.Now()
		if !cluster.Round(ctx, s) {
			t.Fatal("the store could not take the leader's lease")
		}
		return calls(t, reg, "redis") - r0, calls(t, reg, "postgres") - p0, time.Since(start)
	}
	round()
	r1, p1, d1 := round()

	pastSales(t, s, idle)
	round() // the first round after them may still confirm or sweep
	rn, pn, dn := round()
	t.Logf("one round: %d Redis and %d PostgreSQL calls in %v with one sale; %d and %d in %v with %d more idle ones",
		r1, p1, d1, rn, pn, dn, idle)
	if rn > r1+10 || pn > p1+10 {
		t.Errorf("the leader's round made %d Redis and %d PostgreSQL calls with %d idle sales beside the live one, against %d and %d with the live one alone; want about the same (it delays the expiry of holds on the live sale)",
			rn, pn, idle, r1, p1)
	}
}
