package sqlite

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestParseStoredTime: the fast reading of a stored time gives what
// parseTime gives, the same instant or the same error, for the form Surge
// writes and for strings that are nearly it.
func TestParseStoredTime(t *testing.T) {
	cases := []string{
		"2026-12-03T22:26:33.123Z",
		"2024-02-29T23:59:59.999Z", // leap day
		"2023-02-29T00:00:00.000Z", // no such day
		"2100-02-29T00:00:00.000Z", // not a leap year
		"2000-02-29T00:00:00.000Z", // a leap year
		"2026-04-31T00:00:00.000Z",
		"2026-13-01T00:00:00.000Z",
		"2026-00-01T00:00:00.000Z",
		"2026-01-00T00:00:00.000Z",
		"2026-01-01T24:00:00.000Z",
		"2026-01-01T23:60:00.000Z",
		"2026-01-01T23:59:60.000Z",
		"0000-01-01T00:00:00.000Z",
		"9999-12-31T23:59:59.999Z",
		"2026-01-01T00:00:00.00aZ",
		"2026-01-01T00:00:00.000+01:00",
		"2026-01-01T00:00:00Z",
		"2026-01-01T00:00:00.000000Z",
		"2026-01-01 00:00:00.000Z",
		"2026-1-01T00:00:00.000Z",
		"+026-01-01T00:00:00.000Z",
		"",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		// Instants Surge writes, then the same with one byte changed.
		ts := time.Unix(rng.Int64N(1<<35)-1<<33, rng.Int64N(1e9)).UTC()
		s := []byte(surge.FormatTime(ts))
		cases = append(cases, string(s))
		s[rng.IntN(len(s))] = "0123456789-:.TZ x"[rng.IntN(17)]
		cases = append(cases, string(s))
	}
	for _, s := range cases {
		want, werr := parseTime(s)
		got, gerr := parseStoredTime(s)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Errorf("%q: error %v, parseTime's %v", s, gerr, werr)
			continue
		}
		if got != want {
			t.Errorf("%q: %v, parseTime's %v", s, got, want)
		}
	}
}
