// Package memusage reads what the process's memory holds, for the
// benchmarks that report bytes per order (the ledger's, the SQLite
// store's load): the live heap after a collection, and the resident set
// (of this process, or of a server a test started).
package memusage

import (
	"fmt"
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
	u.RSS, _ = resident("self")
	return u
}

// Resident reads the resident set of process pid, in bytes.
func Resident(pid int) (uint64, error) { return resident(strconv.Itoa(pid)) }

// resident reads the resident set of /proc/<proc>/statm (its second field,
// in pages).
func resident(proc string) (uint64, error) {
	b, err := os.ReadFile("/proc/" + proc + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("memusage: /proc/%s/statm holds %q", proc, b)
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memusage: /proc/%s/statm: %w", proc, err)
	}
	return pages * uint64(os.Getpagesize()), nil
}
