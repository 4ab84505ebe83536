//go:build unix

package main

import "syscall"

// openFileLimit is the process's soft RLIMIT_NOFILE. Go (1.19+) raises it
// to the hard limit at start on its own, so this is what the server has.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}
