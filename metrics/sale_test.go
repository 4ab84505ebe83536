package metrics_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/version"
)

// BenchmarkAnswered: counting sold-out answers of one hot sale from every
// core at once, as a spike does.
func BenchmarkAnswered(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry(), version.Info{Version: "test"})
	if err != nil {
		b.Fatal(err)
	}
	s := m.Sale("hot")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Answered("sold_out", false, 40*time.Microsecond)
		}
	})
}

// TestAnsweredSums: what the shards count comes back summed in one series
// per sale and outcome, and the latency histogram puts an answer that
// took exactly a bound in that bound's bucket, as Prometheus's le says.
func TestAnsweredSums(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s := m.Sale("s1")
	for range 1000 {
		s.Answered("sold_out", false, 100*time.Microsecond) // le 0.0001
	}
	s.Answered("reserved", false, 101*time.Microsecond) // le 0.00025
	s.Answered("reserved", true, 20*time.Second)        // +Inf only
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := ""
			for _, l := range mt.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			switch mf.GetName() {
			case "surge_purchases_total":
				got[labels] = mt.GetCounter().GetValue()
			case "surge_purchase_duration_seconds":
				h := mt.GetHistogram()
				got[labels+"count"] = float64(h.GetSampleCount())
				got[labels+"sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					got[labels+"le"+strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	for k, want := range map[string]float64{
		"outcome=sold_out,sale=s1,": 1000,
		"outcome=reserved,sale=s1,": 1,
		"outcome=replayed,sale=s1,": 1,
		"outcome=ended,sale=s1,":    0,
		"outcome=sold_out,sale=,":   0,
		"sale=s1,count":             1002,
		"sale=s1,le0.0001":          1000,
		"sale=s1,le0.00025":         1001,
		"sale=s1,le10":              1001,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if sum := got["sale=s1,sum"]; sum < 20.1 || sum > 20.1002 {
		t.Errorf("sum %v, want 20.100101", sum)
	}
}
