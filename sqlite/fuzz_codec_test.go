package sqlite

import (
	stdjson "encoding/json"
	"errors"
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

// FuzzParseWaitingRoom: a stored waiting room that reads is one the rules
// of a new sale allow, and what Surge writes of it (insertSale) reads back
// as the same room; anything else is refused as damage, never read as
// another room.
func FuzzParseWaitingRoom(f *testing.F) {
	for _, s := range []string{
		`{"admit_per_second":200,"order":"lottery","ticket_seconds":300}`,
		`{"admit_per_second":1000000,"order":"fifo","ticket_seconds":86400}`,
		`{"admit_per_second":0,"order":"fifo","ticket_seconds":60}`,
		`{"order":"fifo","ticket_seconds":60}`,
		`{"admit_per_second":5,"order":"fifo","ticket_seconds":60,"admit_per_second":0}`,
		`{"admit_per_second":5,"order":"fifo","ticket_seconds":60} {}`,
		`{"Admit_Per_Second":5,"order":"fifo","ticket_seconds":60}`,
		`{}`, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		wr, err := parseWaitingRoom(s)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("%q refused with %v; want ErrDamaged", s, err)
			}
			return
		}
		if err := wr.Check(); err != nil {
			t.Fatalf("%q read as %+v, which a new sale may not have: %v", s, *wr, err)
		}
		written, err := stdjson.Marshal(wr) // as insertSale writes it
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseWaitingRoom(string(written))
		if err != nil || *back != *wr {
			t.Fatalf("%q read as %+v, written as %s, read back as %+v (%v)", s, *wr, written, back, err)
		}
	})
}
