//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// canFlock: flock(2) exists, so a lock held tells a live owner.
const canFlock = true

var errWouldBlock = syscall.EWOULDBLOCK

// flock takes an exclusive flock on f without waiting.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// funlock releases f's flock.
func funlock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// openLeftover opens name, which a directory listing showed as a regular
// file, to take its flock: it refuses a symlink put there since, and does
// not wait on a FIFO put there since for a writer that may never come.
func openLeftover(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// hostVFS is the name of SQLite's VFS of the host's files.
const hostVFS = "unix"
