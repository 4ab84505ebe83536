package main

import (
	"io"
	"runtime"
)

// minProcs is the least GOMAXPROCS the commands that commit purchases in
// their own process (embedded serve, demo) run with.
//
// Why: the runtime's default is the number of CPUs the process may use,
// so a server given one CPU (a one-vCPU machine, a cpuset or taskset of
// one) runs Go code on one P. Every group commit holds its thread, and
// with it that P, in fsync; nothing else runs (no request is read,
// no answer written) until the runtime's monitor takes the P back, and
// each commit then pays thread hand-offs both ways. Pinned to one CPU,
// reserve-heavy purchases ran at 4,500-5,600 requests/s with a p99 of
// 143-191 ms on one P, against 15,800-16,600 and 9-18 ms on two
// (docs/benchmarks.md, 2026-12-05, "one CPU"; bench/onecpu.sh). The
// runtime never derives fewer than two from a cgroup's CPU quota; this
// extends that floor to a process on one CPU. A cluster node waits on the
// network, not in a system call, and is left alone: on one CPU it ran as
// well on one P (reserve-heavy 7,700-9,500 requests/s against 7,300-8,200
// on two), and a second P doubled its sold-out tail at saturation.
const minProcs = 2

// commitsHere tells whether the command with these arguments commits
// purchases in this process: demo, and serve in embedded mode (no Redis
// URL on the command line, in the environment or in a --config file). A
// serve whose arguments do not parse is not raised: it reports them and
// exits.
func commitsHere(cmd string, args []string) bool {
	switch cmd {
	case "demo":
		return true
	case "serve":
		l, err := loadServeConfig(args, io.Discard)
		return err == nil && l.c.redisURL == ""
	}
	return false
}

// procsFor returns the GOMAXPROCS to run with, given the runtime's current
// one and the GOMAXPROCS variable: an operator's explicit value is kept,
// however small.
func procsFor(current int, env string) int {
	if env != "" || current >= minProcs {
		return current
	}
	return minProcs
}

// raiseProcs applies procsFor to the process. Setting GOMAXPROCS stops
// the runtime from updating its default when the CPUs the process may use
// change, so it is set only when raised.
func raiseProcs(getenv func(string) string) {
	cur := runtime.GOMAXPROCS(0)
	if n := procsFor(cur, getenv("GOMAXPROCS")); n != cur {
		runtime.GOMAXPROCS(n)
	}
}
