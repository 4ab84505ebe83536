package metrics

import (
	"testing"

	"github.com/surgehq/surge"
)

// TestOutcome pins the mapping of answers to outcome labels: every code
// a purchase can be answered with has its own label, a 201 is reserved or
// replayed, and anything else is "other".
func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		code   string
		replay bool
		want   string
	}{
		{string(surge.CodeReserved), false, "reserved"},
		{string(surge.CodeReserved), true, "replayed"},
		{string(surge.CodeSoldOut), false, "sold_out"},
		{string(surge.CodeLimitReached), false, "limit_reached"},
		{string(surge.CodeNotStarted), false, "not_started"},
		{string(surge.CodeEnded), false, "ended"},
		{string(surge.CodePaused), false, "paused"},
		{string(surge.CodeIdempotencyMismatch), false, "idempotency_mismatch"},
		{string(surge.CodeRateLimited), false, "rate_limited"},
		{string(surge.CodeOverloaded), false, "overloaded"},
		{string(surge.CodeNotAdmitted), false, "not_admitted"},
		{string(surge.CodeUnavailable), false, "unavailable"},
		{string(surge.CodeInvalid), false, "invalid_request"},
		{string(surge.CodeSaleNotFound), false, "sale_not_found"},
		{"too_large", false, "too_large"},
		{"unauthenticated", false, "unauthenticated"},
		{"internal", false, "internal"},
		{"sold_out", true, "sold_out"}, // replay means nothing but on a 201
		{"no_such_code", false, "other"},
		{"", false, "other"},
	} {
		if got := Outcomes[outcome(c.code, c.replay)]; got != c.want {
			t.Errorf("outcome(%q, %v) = %q, want %q", c.code, c.replay, got, c.want)
		}
	}
	// Every label but "other" is reached by its own name.
	for i, o := range Outcomes[:len(Outcomes)-1] {
		if o == "replayed" {
			continue
		}
		if got := outcome(o, false); got != i {
			t.Errorf("outcome(%q) = %d (%s), want %d", o, got, Outcomes[got], i)
		}
	}
}

// TestNilCountsNothing: a node without metrics passes nil everywhere.
func TestNilCountsNothing(t *testing.T) {
	var m *Metrics
	m.ObserveBatch(3, 0)
	s := m.Sale("x")
	s.Answered("reserved", false, 0)
	s.Transition(ToPaid, 1)
	m.Unknown().Answered("sale_not_found", false, 0)
}
