package surge_test

import (
	"strings"
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
	now := start.Add(time.Minute) // a whole millisecond: the pause's start as kept
	for _, c := range []struct {
		name string
		p    surge.SalePatch
		sold int64
		want func(surge.Sale) surge.Sale // nil: refused with code
		code surge.Code
	}{
		{"nothing", surge.SalePatch{}, 4, func(s surge.Sale) surge.Sale { return s }, ""},
		{"pause", surge.SalePatch{Paused: new(true)}, 4, func(s surge.Sale) surge.Sale { s.Paused, s.PausedAt = true, now; return s }, ""},
		{"resume a live sale", surge.SalePatch{Paused: new(false)}, 4, func(s surge.Sale) surge.Sale { return s }, ""},
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
		got, err := base.Apply(c.p, c.sold, now.Add(999*time.Microsecond))
		if c.want == nil {
			if surge.ErrorCode(err) != c.code {
				t.Errorf("%s: (%+v, %v), want %s", c.name, got, err, c.code)
			}
			continue
		}
		want := c.want(base)
		if err != nil || !got.EndsAt.Equal(want.EndsAt) || !got.PausedAt.Equal(want.PausedAt) {
			t.Errorf("%s: (%+v, %v), want %+v", c.name, got, err, want)
			continue
		}
		got.EndsAt, want.EndsAt = time.Time{}, time.Time{} // compared above, by instant
		got.PausedAt, want.PausedAt = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("%s: %+v, want %+v", c.name, got, want)
		}
	}
	if base.Paused || base.Stock != 10 {
		t.Error("Apply changed the sale it was called on")
	}
}

// The pauses of a sale add up to how long its clock stood still
// (Sale.Stopped), counted from its start: a waiting room's clock reads
// now less that. Pausing a paused sale again (a retried PATCH) keeps the
// pause's start, and a pause without a start (one an older version began)
// stops nothing.
func TestSalePausesStopTheClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	pause, resume := surge.SalePatch{Paused: new(true)}, surge.SalePatch{Paused: new(false)}
	type step struct {
		at time.Duration
		p  surge.SalePatch
	}
	for _, c := range []struct {
		name  string
		steps []step
		at    time.Duration
		want  time.Duration
	}{
		{"never paused", nil, time.Hour, 0},
		{"paused now", []step{{time.Minute, pause}}, 5 * time.Minute, 4 * time.Minute},
		{"paused before now", []step{{time.Minute, pause}}, 30 * time.Second, 0},
		{"paused before the start", []step{{-time.Hour, pause}}, 2 * time.Minute, 2 * time.Minute},
		{"paused and resumed before the start", []step{{-time.Hour, pause}, {-time.Minute, resume}}, time.Hour, 0},
		{"paused across the start", []step{{-time.Hour, pause}, {3 * time.Minute, resume}}, time.Hour, 3 * time.Minute},
		{"two pauses", []step{{time.Minute, pause}, {2 * time.Minute, resume}, {10 * time.Minute, pause}, {13 * time.Minute, resume}},
			time.Hour, 4 * time.Minute},
		{"two pauses, the second in force", []step{{time.Minute, pause}, {2 * time.Minute, resume}, {10 * time.Minute, pause}},
			11 * time.Minute, 2 * time.Minute},
		{"paused twice: the first start counts", []step{{time.Minute, pause}, {5 * time.Minute, pause}, {7 * time.Minute, resume}},
			time.Hour, 6 * time.Minute},
		{"resumed twice", []step{{time.Minute, pause}, {2 * time.Minute, resume}, {9 * time.Minute, resume}}, time.Hour, time.Minute},
		{"resumed a millisecond late", []step{{time.Minute, pause}, {2*time.Minute + 1500*time.Microsecond, resume}},
			time.Hour, time.Minute + time.Millisecond},
	} {
		sl := surge.Sale{ID: "s", Name: "Drop", Stock: 10, PerUserLimit: 1, StartsAt: start, HoldSeconds: 900}
		for _, st := range c.steps {
			var err error
			if sl, err = sl.Apply(st.p, 0, at(st.at)); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		if got := sl.Stopped(at(c.at)); got != c.want {
			t.Errorf("%s: Stopped = %v, want %v", c.name, got, c.want)
		}
		if sl.Paused == sl.PausedAt.IsZero() {
			t.Errorf("%s: paused %t with PausedAt %v", c.name, sl.Paused, sl.PausedAt)
		}
	}
	legacy := surge.Sale{StartsAt: start, Paused: true, PausedFor: time.Minute}
	if got := legacy.Stopped(at(time.Hour)); got != time.Minute {
		t.Errorf("a pause without a start: Stopped = %v, want the minute of the pauses before it", got)
	}
}

// TestStockCutBelowTheLimitSaysWhy: an operator who cuts only the stock
// of a sale below its per-user limit is refused (the limit must stay
// within the stock), and the refusal must say so in terms of what was
// sent: the stock, the limit that stands in its way and what to send
// instead. It said "per_user_limit must be between 1 and the stock (3)",
// naming a field the request did not carry.
func TestStockCutBelowTheLimitSaysWhy(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	base := surge.Sale{ID: "s", Name: "Drop", Stock: 10, PerUserLimit: 5, StartsAt: start, HoldSeconds: 900}
	for _, c := range []struct {
		name string
		p    surge.SalePatch
		want []string // in the message
	}{
		{"stock alone", surge.SalePatch{Stock: new(int64(3))}, []string{"stock 3", "per-user limit 5", `"per_user_limit"`}},
		{"limit over the stock", surge.SalePatch{PerUserLimit: new(int64(11))}, []string{"per_user_limit must be between 1 and the stock (10)"}},
		{"both, the limit over the new stock", surge.SalePatch{Stock: new(int64(3)), PerUserLimit: new(int64(4))},
			[]string{"per_user_limit must be between 1 and the stock (3)"}},
	} {
		_, err := base.Apply(c.p, 0, start)
		refusedSaying(t, c.name, err, c.want)
	}
}

// TestEndBeforeTheStartSaysWhy: `surge sale end` (PATCH ends_at: now) of
// a sale that has not started yet is refused, as every end at or before
// the start is, and the refusal must tell the operator why and what keeps
// the sale from selling instead (an archive calls it off, a pause holds
// it). It said only "ends_at must be after starts_at",
// to an operator who had sent no time at all.
func TestEndBeforeTheStartSaysWhy(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	start := now.Add(time.Hour)
	base := surge.Sale{ID: "s", Name: "Drop", Stock: 10, PerUserLimit: 2, StartsAt: start, HoldSeconds: 900}
	for _, c := range []struct {
		name string
		end  time.Time
		want []string // in the message
	}{
		{"end now, before the start", now, []string{"has not started", "2026-01-01T11:00:00", "archive it", "pause it"}},
		{"an end in the past", now.Add(-time.Hour), []string{"has not started", "archive it", "pause it"}},
		// A later end that is still not after the start: the rule says it.
		{"an end between now and the start", now.Add(30 * time.Minute), []string{"ends_at must be after starts_at"}},
	} {
		_, err := base.Apply(surge.SalePatch{EndsAt: &c.end}, 0, now)
		refusedSaying(t, c.name, err, c.want)
	}
}

// refusedSaying: err is an invalid_request whose message says each of want.
func refusedSaying(t *testing.T, name string, err error, want []string) {
	t.Helper()
	if surge.ErrorCode(err) != surge.CodeInvalid {
		t.Errorf("%s: %v, want %s", name, err, surge.CodeInvalid)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: the refusal %q does not say %q", name, err, w)
		}
	}
}
