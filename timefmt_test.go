package surge_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func TestAppendTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 12, 5, 3, 4, 5, 678_901_234, time.UTC), "2026-12-05T03:04:05.678Z"},
		{time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC), "2024-02-29T23:59:59.999Z"},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("UTC+9", 9*3600)), "2025-12-31T15:00:00.000Z"},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "0000-01-01T00:00:00.000Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 1_000_000, time.UTC), "9999-12-31T23:59:59.001Z"},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "10000-01-01T00:00:00.000Z"},
		{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), "-0001-01-01T00:00:00.000Z"},
		{time.Time{}, "0001-01-01T00:00:00.000Z"},
	} {
		if got := string(surge.AppendTime([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("AppendTime(%v) = %q, want %q", tc.in, got, "x"+tc.want)
		}
		if got := surge.FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendTime holds AppendTime to the standard library's text of the
// layout, for any instant.
func FuzzAppendTime(f *testing.F) {
	f.Add(int64(1_796_440_000), int64(123_456_789))
	f.Add(int64(-62_135_596_800), int64(0))
	f.Add(int64(253_402_300_799), int64(999_999_999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		in := time.Unix(sec, nsec)
		want := in.UTC().Format(surge.TimeLayout)
		if got := string(surge.AppendTime(nil, in)); got != want {
			t.Fatalf("AppendTime(%d, %d) = %q, want %q", sec, nsec, got, want)
		}
	})
}

// BenchmarkFormatTime sets AppendTime beside the standard library's
// formatting of the same layout.
func BenchmarkFormatTime(b *testing.B) {
	t := time.Date(2026, 12, 5, 3, 4, 5, 678_901_234, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = t.UTC().AppendFormat(buf[:0], surge.TimeLayout)
		}
	})
	b.Run("AppendTime", func(b *testing.B) {
		for b.Loop() {
			buf = surge.AppendTime(buf[:0], t)
		}
	})
}
