package waitroom

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		rate int64
		slot int64
		at   time.Duration // after start
	}{
		{1, 0, 0},
		{1, 1, time.Second},
		{1, 3600, time.Hour},
		{2, 1, 500 * time.Millisecond},
		{3, 1, 333333334}, // rounded up: never early
		{3, 3, time.Second},
		{1_000_000, 1, time.Microsecond},
		{1_000_000, 86_400_000_000, 24 * time.Hour},
		{7, 7 * 86400 * 365 * 100, 100 * 365 * 24 * time.Hour},
	} {
		s := Schedule{Start: start, Rate: c.rate}
		at := s.AdmitAt(c.slot)
		if want := start.Add(c.at); !at.Equal(want) {
			t.Errorf("rate %d: AdmitAt(%d) = %v, want %v", c.rate, c.slot, at, want)
		}
		// Slot k opens exactly at AdmitAt(k): not a nanosecond before.
		if got := s.Opened(at); got != c.slot+1 {
			t.Errorf("rate %d: Opened(AdmitAt(%d)) = %d, want %d", c.rate, c.slot, got, c.slot+1)
		}
		if got := s.Opened(at.Add(-time.Nanosecond)); got != c.slot {
			t.Errorf("rate %d: Opened just before AdmitAt(%d) = %d, want %d", c.rate, c.slot, got, c.slot)
		}
		if got := s.FirstFree(at); got != c.slot {
			t.Errorf("rate %d: FirstFree(AdmitAt(%d)) = %d", c.rate, c.slot, got)
		}
	}
	s := Schedule{Start: start, Rate: 10}
	if s.Opened(start.Add(-time.Hour)) != 0 || s.FirstFree(start.Add(-time.Hour)) != 0 {
		t.Error("slots open before the start")
	}
	// Consecutive slots, at every rate: monotone, and Rate per second.
	for _, rate := range []int64{1, 3, 7, 1000, 999_983, 1_000_000} {
		s := Schedule{Start: start, Rate: rate}
		prev := s.AdmitAt(0)
		for k := int64(1); k < 2000; k++ {
			at := s.AdmitAt(k)
			if !at.After(prev) {
				t.Fatalf("rate %d: slot %d opens at %v, not after slot %d at %v", rate, k, at, k-1, prev)
			}
			prev = at
		}
		if got := s.Opened(start.Add(time.Second)); got != rate+1 {
			t.Errorf("rate %d: %d slots open after 1 s, want %d", rate, got, rate+1)
		}
	}
}
