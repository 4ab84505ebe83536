package main

import "math"

// defaultHeapFloorMiB is the heap floor of `surge serve` unless
// --heap-floor-mib says otherwise.
//
// Why a floor: the Go collector starts a cycle when the heap has grown by
// GOGC % (100) over what the last cycle found live. A server that has just
// started holds a few MiB, so the first second of a spike, which allocates
// hundreds of MiB of short-lived request garbage, ran 15-35 cycles, each
// with its write barrier and mark assists on the purchases' goroutines:
// the open loop's p99 in that second was 10-20 ms against 3-7 ms in the
// seconds after it (docs/benchmarks.md, 2026-12-04, "a heap floor"). With
// 64 MiB counted as live the same run collects about five times, and the
// floor stops mattering once the sales' own memory (the ledger, the rate
// limiter's buckets) is larger than it.
const defaultHeapFloorMiB = 64

// maxHeapFloorMiB bounds the flag: a floor is address space, but a typo of
// a few more digits should be refused, not reserved. A 32-bit build has
// far less of it (and mib<<20 must fit its int): a quarter of its range.
const maxHeapFloorMiB = min(16<<10, math.MaxInt>>22)

// heapFloor returns a block of mib MiB for the caller to keep reachable for
// as long as the floor should hold (nil for 0). The runtime has no setting
// for a least heap goal (GOMEMLIMIT is a ceiling; GOGC=off with it makes
// the collector run flat out once the live heap nears the limit), so the
// floor is the well-worn ballast: a pointer-free block the collector counts
// as live but never scans. It is never written, and a fresh block of that
// size comes from the OS already zero, so its pages are never touched: it
// takes address space, not resident memory (TestHeapFloor checks both, on
// the real binary). That holds for a heap that has not yet freed a block
// as large, which the runtime would zero and so make resident: serve
// allocates the floor before it starts anything.
//
// What the floor does cost is garbage: the heap grows that much further
// between two collections, so under load the resident set can be up to
// that much larger (681 instead of 614 MiB after a reserve-heavy run with
// a million orders loaded, docs/benchmarks.md).
func heapFloor(mib int) []byte {
	if mib <= 0 {
		return nil
	}
	return make([]byte, mib<<20)
}
