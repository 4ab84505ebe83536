package sqlite

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// FuzzParseStoredTime: the load's fast reading of a stored time is
// parseTime's, the same instant or the same refusal, for any text; and
// what Surge writes reads back as the same instant.
func FuzzParseStoredTime(f *testing.F) {
	for _, s := range []string{"2026-12-03T22:26:33.123Z", "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z",
		"0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-01-01T00:00:00.000+01:00", "2026-01-01T00:00:00Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := parseTime(s)
		got, gerr := parseStoredTime(s)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%q: error %v, parseTime's %v", s, gerr, werr)
		}
		if !got.Equal(want) || got.Location() != want.Location() {
			t.Fatalf("%q: %v, parseTime's %v", s, got, want)
		}
		if werr == nil && want.Year() >= 0 && want.Year() <= 9999 {
			back, err := parseStoredTime(formatTime(want))
			if err != nil || !back.Equal(want.Truncate(time.Millisecond)) {
				t.Fatalf("%q: written as %q, read back as %v (%v)", s, surge.FormatTime(want), back, err)
			}
		}
	})
}
