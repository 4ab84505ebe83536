package surge_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func TestPausedStatus(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	s := surge.Sale{StartsAt: start, EndsAt: start.Add(time.Hour), Paused: true}
	for _, c := range []struct {
		at        time.Time
		remaining int64
		want      surge.SaleStatus
		gate      surge.Code
	}{
		{start.Add(-time.Millisecond), 5, surge.SalePaused, surge.CodePaused}, // paused before its start
		{start, 5, surge.SalePaused, surge.CodePaused},
		{start, 0, surge.SalePaused, surge.CodePaused},
		{start.Add(time.Hour), 5, surge.SaleEnded, surge.CodeEnded}, // the end outranks the pause
	} {
		if got := s.Status(c.at, c.remaining); got != c.want {
			t.Errorf("Status(%v, %d) = %s, want %s", c.at, c.remaining, got, c.want)
		}
		if got := s.Gate(c.at); got != c.gate {
			t.Errorf("Gate(%v) = %q, want %q", c.at, got, c.gate)
		}
	}
}

func TestSaleApply(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	base := surge.Sale{ID: "s", Name: "Drop", Stock: 10, PerUserLimit: 2, StartsAt: start, HoldSeconds: 900}
	later := start.Add(time.Hour + 1500*time.Microsecond)
	for _, c := range []struct {
		name string
		p    surge.SalePatch
		sold int64
		want func(surge.Sale) surge.Sale // nil: refused with code
		code surge.Code
	}{
		{"nothing", surge.SalePatch{}, 4, func(s surge.Sale) surge.Sale { return s }, ""},
		{"pause", surge.SalePatch{Paused: new(true)}, 4, func(s surge.Sale) surge.Sale { s.Paused = true; return s }, ""},
		{"stock down to sold", surge.SalePatch{Stock: new(int64(4))}, 4, func(s surge.Sale) surge.Sale { s.Stock = 4; return s }, ""},
		{"stock below sold", surge.SalePatch{Stock: new(int64(3))}, 4, nil, surge.CodeStockBelowSold},
		{"stock up", surge.SalePatch{Stock: new(int64(50))}, 4, func(s surge.Sale) surge.Sale { s.Stock = 50; return s }, ""},
		{"stock 0", surge.SalePatch{Stock: new(int64(0))}, 0, nil, surge.CodeInvalid},
		{"stock below the limit", surge.SalePatch{Stock: new(int64(1))}, 0, nil, surge.CodeInvalid},
		{"stock and limit down", surge.SalePatch{Stock: new(int64(1)), PerUserLimit: new(int64(1))}, 0,
			func(s surge.Sale) surge.Sale { s.Stock, s.PerUserLimit = 1, 1; return s }, ""},
		{"limit over the stock", surge.SalePatch{PerUserLimit: new(int64(11))}, 0, nil, surge.CodeInvalid},
		{"end, truncated to the ms", surge.SalePatch{EndsAt: &later}, 0,
			func(s surge.Sale) surge.Sale { s.EndsAt = start.Add(time.Hour + time.Millisecond); return s }, ""},
		{"no end", surge.SalePatch{EndsAt: new(time.Time{})}, 0, func(s surge.Sale) surge.Sale { return s }, ""},
		{"end at the start", surge.SalePatch{EndsAt: &start}, 0, nil, surge.CodeInvalid},
		{"blank name", surge.SalePatch{Name: new("  ")}, 0, nil, surge.CodeInvalid},
		{"name with a bidi control", surge.SalePatch{Name: new("a\u202eb")}, 0, nil, surge.CodeInvalid},
		{"hold too long", surge.SalePatch{HoldSeconds: new(int64(surge.MaxHoldSeconds + 1))}, 0, nil, surge.CodeInvalid},
		{"name and hold", surge.SalePatch{Name: new("Other"), HoldSeconds: new(int64(60))}, 0,
			func(s surge.Sale) surge.Sale { s.Name, s.HoldSeconds = "Other", 60; return s }, ""},
	} {
		got, err := base.Apply(c.p, c.sold)
		if c.want == nil {
			if surge.ErrorCode(err) != c.code {
				t.Errorf("%s: (%+v, %v), want %s", c.name, got, err, c.code)
			}
			continue
		}
		want := c.want(base)
		if err != nil || !got.EndsAt.Equal(want.EndsAt) {
			t.Errorf("%s: (%+v, %v), want %+v", c.name, got, err, want)
			continue
		}
		got.EndsAt, want.EndsAt = time.Time{}, time.Time{} // compared above, by instant
		if got != want {
			t.Errorf("%s: %+v, want %+v", c.name, got, want)
		}
	}
	if base.Paused || base.Stock != 10 {
		t.Error("Apply changed the sale it was called on")
	}
}
