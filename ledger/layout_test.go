package ledger

import (
	"math/rand/v2"
	"testing"
)

// TestTableMoves drives a table through many growths, each moved a few
// slots per insert, with removals and reused entry numbers in between,
// against a map: every live entry is found, no removed one is, the count
// and each agree with the map, and the table stays at most half full.
// "few tags" makes most entries share a tag (long probes, every eq called).
func TestTableMoves(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags uint64 // distinct tags; 0: any
	}{{"any tags", 0}, {"few tags", 7}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			hashOf := func() uint64 {
				h := rng.Uint64()
				if tc.tags > 0 {
					h = (h%tc.tags)<<32 | h&0xffffffff
				}
				return h
			}
			var tb table
			live := map[uint32]uint64{} // entry -> hash
			var free []uint32
			next := uint32(0)
			steps := 200_000
			if tc.tags > 0 {
				steps = 20_000
			}
			for step := range steps {
				// Mostly inserts, so the table grows through many moves.
				if len(live) == 0 || rng.IntN(10) < 6 {
					var e uint32
					if n := len(free); n > 0 && rng.IntN(2) == 0 {
						e, free = free[n-1], free[:n-1]
					} else {
						e, next = next, next+1
					}
					h := hashOf()
					tb.insert(h, e)
					live[e] = h
				} else {
					for e, h := range live { // any one
						tb.remove(h, func(j uint32) bool { return j == e })
						if _, ok := tb.get(h, func(j uint32) bool { return j == e }); ok {
							t.Fatalf("step %d: entry %d found after its removal", step, e)
						}
						delete(live, e)
						free = append(free, e)
						break
					}
				}
				if tb.n != len(live) {
					t.Fatalf("step %d: n = %d, %d live", step, tb.n, len(live))
				}
				if 2*tb.n > len(tb.slots) {
					t.Fatalf("step %d: %d entries in %d slots", step, tb.n, len(tb.slots))
				}
				if step%997 == 0 || tb.old != nil && step%31 == 0 {
					seen := map[uint32]bool{}
					tb.each(func(e uint32) {
						if seen[e] {
							t.Fatalf("step %d: each visits %d twice", step, e)
						}
						seen[e] = true
					})
					if len(seen) != len(live) {
						t.Fatalf("step %d: each visits %d entries, %d live", step, len(seen), len(live))
					}
					for e, h := range live {
						if got, ok := tb.get(h, func(j uint32) bool { return j == e }); !ok || got != e {
							t.Fatalf("step %d: entry %d not found (moving: %v)", step, e, tb.old != nil)
						}
					}
				}
			}
			if len(tb.slots) < 1<<12 {
				t.Errorf("the table grew to %d slots only", len(tb.slots))
			}
		})
	}
}
