package sqlite

import "testing"

// TestSeqRanges: the ranges cover [lo, hi] in order, without gap or
// overlap, about rangeOrders orders each when the orders are dense.
func TestSeqRanges(t *testing.T) {
	for _, c := range []struct {
		lo, hi int64
		n      int
		ranges int
	}{
		{1, 1, 1, 1},
		{5, 9, 5, 1},
		{1, rangeOrders, rangeOrders, 1},
		{1, rangeOrders + 1, rangeOrders + 1, 2},
		{1, 1_000_000, 1_000_000, 245},
		{100, 1_000_099, 500_000, 123}, // half the seqs are another sale's
		{1, 10_000_000, 10, 1},         // a few orders spread thin: one range
	} {
		got := seqRanges(c.lo, c.hi, c.n)
		if len(got) != c.ranges {
			t.Errorf("seqRanges(%d, %d, %d): %d ranges, want %d", c.lo, c.hi, c.n, len(got), c.ranges)
		}
		next := c.lo
		for _, r := range got {
			if r.lo != next || r.hi < r.lo {
				t.Fatalf("seqRanges(%d, %d, %d): %v does not follow on from %d", c.lo, c.hi, c.n, r, next)
			}
			next = r.hi + 1
		}
		if next != c.hi+1 {
			t.Errorf("seqRanges(%d, %d, %d) ends at %d, want %d", c.lo, c.hi, c.n, next-1, c.hi)
		}
	}
}
