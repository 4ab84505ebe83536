package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/metrics"
)

// TestTokenCollector: the buyer tokens checked in full are one counter
// with a series per result, read at scrape time.
func TestTokenCollector(t *testing.T) {
	figures := metrics.TokenFigures{Accepted: 10000, Refused: 3}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewTokenCollector(func() metrics.TokenFigures { return figures }))
	check := func(accepted, refused float64) {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if len(fams) != 1 || fams[0].GetName() != "surge_buyer_token_checks_total" || fams[0].GetType().String() != "COUNTER" {
			t.Fatalf("families %v, want the one counter surge_buyer_token_checks_total", fams)
		}
		got := map[string]float64{}
		for _, m := range fams[0].GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetName() == "result" {
				got[l[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		if len(got) != 2 || got["accepted"] != accepted || got["refused"] != refused {
			t.Fatalf("series %v, want accepted %v and refused %v", got, accepted, refused)
		}
	}
	check(10000, 3)
	figures.Refused = 4
	check(10000, 4)
}
