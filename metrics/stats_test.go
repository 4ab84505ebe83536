package metrics_test

import (
	"strings"
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

// TestPrivateConnCollector: the private listeners' refusals are one
// counter with a series per listener asked for, read at scrape time, and
// leave /debug/stats's unlabelled connection figures alone.
func TestPrivateConnCollector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refused map[string]int64
	}{
		{"both", map[string]int64{"admin": 6, "debug": 0}},
		{"admin only", map[string]int64{"admin": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(metrics.NewPrivateConnCollector(func() map[string]int64 { return tc.refused }))
			reg.MustRegister(metrics.NewConnCollector(func() metrics.ConnFigures { return metrics.ConnFigures{Open: 3, Refused: 9} }))
			fams, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, f := range fams {
				if f.GetName() != "surge_private_connections_refused_total" {
					continue
				}
				for _, m := range f.GetMetric() {
					if l := m.GetLabel(); len(l) == 1 && l[0].GetName() == "listener" {
						got[l[0].GetValue()] = int64(m.GetCounter().GetValue())
					}
				}
			}
			if len(got) != len(tc.refused) {
				t.Fatalf("series %v, want %v", got, tc.refused)
			}
			for k, v := range tc.refused {
				if got[k] != v {
					t.Fatalf("series %v, want %v", got, tc.refused)
				}
			}
			stats, err := metrics.Stats(reg)
			if err != nil {
				t.Fatal(err)
			}
			if c, _ := stats["connections"].(map[string]int64); c["refused"] != 9 {
				t.Fatalf("/debug/stats connections %v, want the API listener's refused 9", stats["connections"])
			}
		})
	}
}

// TestConnRefusedHelpSaysPerAddress: a connection limiter refuses only
// over the per-address cap; at the total cap it reclaims an idle
// connection or waits (http.ConnLimits). The help texts said "refused
// over the total or per-address cap", sending an operator who sees the
// counter rise to raise --max-conns, which changes nothing.
func TestConnRefusedHelpSaysPerAddress(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewConnCollector(func() metrics.ConnFigures { return metrics.ConnFigures{} }))
	reg.MustRegister(metrics.NewPrivateConnCollector(func() map[string]int64 { return map[string]int64{"admin": 0} }))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range fams {
		switch f.GetName() {
		case "surge_connections_refused_total", "surge_private_connections_refused_total":
			seen++
			if h := f.GetHelp(); strings.Contains(h, "total") || !strings.Contains(h, "per-address") {
				t.Errorf("%s help %q: want the per-address cap alone named (at the total cap nothing is refused)", f.GetName(), h)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("%d of the 2 refused families gathered", seen)
	}
}
