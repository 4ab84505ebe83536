// Package memusage reads what the process's memory holds, for the
// benchmarks that report bytes per order (the ledger's, the SQLite
// store's load): the live heap after a collection, and the resident set.
package memusage

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Usage is the live heap and the resident set, in bytes.
type Usage struct{ Heap, RSS uint64 }

// Measure collects, returns freed memory to the OS, and reads the live
// heap and the resident set (0 where /proc is missing).
func Measure() Usage {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := Usage{Heap: ms.HeapInuse}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			u.RSS = pages * uint64(os.Getpagesize())
		}
	}
	return u
}
