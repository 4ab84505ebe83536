package surge_test

import (
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// A waiting room's schedule counts slots from starts_at in time.Duration,
// which saturates at about 292 years: starts_at is bounded so that every
// admission time of the sale stays computable (issue 9, item 13).
func TestNewSaleWaitingRoomStartBound(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	room := &surge.WaitingRoom{AdmitPerSecond: 10, Policy: surge.QueueFIFO, TicketSeconds: 60}
	const msg = "starts_at of a sale with a waiting room must lie within 100 years of now"
	for _, c := range []struct {
		name  string
		start time.Time
		room  *surge.WaitingRoom
		want  string // "" accepts
	}{
		{"now", now, room, ""},
		{"a century ago", now.Add(-surge.MaxWaitingRoomSkew), room, ""},
		{"a century ahead", now.Add(surge.MaxWaitingRoomSkew), room, ""},
		{"just over a century ago", now.Add(-surge.MaxWaitingRoomSkew - time.Millisecond), room, msg},
		{"just over a century ahead", now.Add(surge.MaxWaitingRoomSkew + time.Millisecond), room, msg},
		{"year 1733", time.Date(1733, 6, 1, 0, 0, 0, 0, time.UTC), room, msg},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), room, msg},
		{"year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), room, msg},
		// Without a waiting room nothing is computed from starts_at.
		{"year 1 without a room", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := c.start
			_, err := surge.NewSale(surge.SaleInput{Name: ptr("n"), Stock: ptr(int64(5)), StartsAt: &start, WaitingRoom: c.room}, now)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *surge.Error
			if !errors.As(err, &e) || e.Code != surge.CodeInvalid || e.Message != c.want {
				t.Fatalf("err = %v, want invalid_request: %s", err, c.want)
			}
		})
	}
}
