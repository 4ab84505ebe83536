package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/surgehq/surge/internal/memusage"
)

// TestHeapFloor starts the real binary with and without a floor: with it,
// the collector's goal is above the floor, and the resident memory is not
// larger by anything like the floor. In a process of its own, as in
// production, the floor is the first large block the heap hands out, so
// it comes from the OS untouched; inside the test process a block freed
// by another test could be reused and zeroed, which is why it is not
// measured here.
func TestHeapFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary")
	}
	const mib = 256
	const token = "heap-floor-admin-token"
	measure := func(floor string) (goal, rss int64) {
		p := startProc(t, t.TempDir(), token, "--heap-floor-mib", floor)
		defer p.stop(t, os.Interrupt, 10*time.Second)
		resident, err := memusage.Resident(p.cmd.Process.Pid)
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		return gauge(t, p.base, token, "go_memstats_next_gc_bytes"), int64(resident)
	}
	goalOff, rssOff := measure("0")
	goalOn, rssOn := measure(strconv.Itoa(mib))
	if goalOn < mib<<20 || goalOff >= mib<<20 {
		t.Errorf("heap goal %d MiB with a %d MiB floor, %d MiB without one", goalOn>>20, mib, goalOff>>20)
	}
	// A floor whose pages were written would show in full.
	if grew := rssOn - rssOff; grew > mib<<20/8 {
		t.Errorf("resident memory %d MiB with a %d MiB floor, %d MiB without one", rssOn>>20, mib, rssOff>>20)
	}
}
