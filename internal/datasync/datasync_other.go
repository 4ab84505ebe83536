//go:build !linux

package datasync

import "os"

// File flushes f's data; package syscall has no fdatasync here.
func File(f *os.File) error { return f.Sync() }
