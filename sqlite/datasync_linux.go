package sqlite

import (
	"os"
	"syscall"
)

// datasync flushes f's data without its timestamps: the mark file keeps its
// size, so fdatasync makes it durable without a journal commit for mtime.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
