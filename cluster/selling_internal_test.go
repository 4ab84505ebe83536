package cluster

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// TestSellingOutlastsAShorterHold: a sale counts as selling, and is swept
// every round, until five minutes after the last hold of the orders the
// leader saw it sell ends. A PATCH shortening its hold time applies to
// reservations made after it; the earlier ones keep theirs. A sale that
// sold again after such a PATCH took the new, shorter end for all its
// holds, and left the every-round sweep while its earlier orders were
// still held.
func TestSellingOutlastsAShorterHold(t *testing.T) {
	s := &Store{sold: map[string]soldSeen{"live": {}}}
	row := func(ever, hold int64) postgres.SaleRow {
		return postgres.SaleRow{Sale: surge.Sale{ID: "live", HoldSeconds: hold}, Ever: ever}
	}
	t0 := time.Date(2031, 3, 14, 10, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		at         time.Duration
		ever, hold int64
		want       bool
		what       string
	}{
		{0, 10, 3600, true, "10 units sold with a 1-hour hold"},
		{10 * time.Minute, 11, 60, true, "1 more sold after the hold was cut to 60 s"},
		{20 * time.Minute, 11, 60, true, "the first 10 orders still held (for 40 more minutes)"},
		{64 * time.Minute, 11, 60, true, "within five minutes of their holds' end"},
		{66 * time.Minute, 11, 60, false, "six minutes after every hold ended"},
	} {
		if got := s.selling(row(step.ever, step.hold), t0.Add(step.at)); got != step.want {
			t.Errorf("at +%v, %s: selling = %v, want %v", step.at, step.what, got, step.want)
		}
	}
}
