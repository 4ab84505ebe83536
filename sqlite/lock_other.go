//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// canFlock: without flock(2), a lock says nothing of its owner.
const canFlock = false

var errWouldBlock = errors.New("would block")

// flock is a no-op where flock(2) does not exist (Surge is built and
// tested on Linux). The data directory's lock does not rely on it:
// lockDir refuses to open a store there (canFlock).
func flock(*os.File) error { return nil }

func funlock(*os.File) error { return nil }

// openLeftover is unused where flock does not exist (removeLeftovers
// leaves every copy there).
func openLeftover(name string) (*os.File, error) { return os.Open(name) }

// hostVFS is the name of SQLite's VFS of the host's files.
const hostVFS = "win32"
