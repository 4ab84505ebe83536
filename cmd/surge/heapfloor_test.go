package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

// TestHeapFloor: while the floor is held, a collection leaves a heap goal
// above it, and the floor adds (almost) nothing to the resident memory.
func TestHeapFloor(t *testing.T) {
	const mib = 256
	goal := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	before, rssBefore := goal(), rss(t)
	floor := heapFloor(mib)
	runtime.GC()
	after, rssAfter := goal(), rss(t)
	runtime.KeepAlive(floor)
	if after < before+mib<<20 {
		t.Errorf("heap goal %d MiB with a %d MiB floor, %d MiB without it", after>>20, mib, before>>20)
	}
	// A floor whose pages were written would show in full.
	if grew := rssAfter - rssBefore; grew > mib<<20/8 {
		t.Errorf("resident memory grew by %d MiB with a %d MiB floor", grew>>20, mib)
	}
	if heapFloor(0) != nil {
		t.Error("heapFloor(0) is not nil")
	}
}

// rss reads this process's resident memory, in bytes, from /proc.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
