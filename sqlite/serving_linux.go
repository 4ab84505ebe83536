//go:build linux

package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

// markServing puts an open file description (OFD) read lock on the data
// directory d, which a store keeps open while it runs (dirLock.d); closing
// d drops it. Readers cannot test the flocks that keep a second store out
// without taking them, and one that took them, however briefly, could
// make a store starting then fail as locked out; this lock they test
// without taking it (served). An OFD lock, not a POSIX one: a POSIX lock
// belongs to the process, and any close of the directory in it (a reader
// of the same process) would drop it.
func markServing(d *os.File) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Start: 0, Len: 1}
	return unix.FcntlFlock(d.Fd(), unix.F_OFD_SETLK, &lk)
}

// served reports whether a store holds dir (markServing). known is false
// when that cannot be told; the caller must then assume one does.
func served(dir string) (held, known bool) {
	d, err := os.Open(dir)
	if err != nil {
		return false, false
	}
	defer d.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 1}
	if err := unix.FcntlFlock(d.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, false
	}
	return lk.Type != unix.F_UNLCK, true
}
