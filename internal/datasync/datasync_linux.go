package datasync

import (
	"os"
	"syscall"
)

// File flushes f's data, retrying when a signal interrupts the call.
func File(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
