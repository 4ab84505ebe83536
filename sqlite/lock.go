package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// LockName is the lock file inside the data directory.
const LockName = "surge.lock"

// ErrLocked marks a data directory another process holds.
var ErrLocked = errors.New("data directory in use")

// dirLock is the store's exclusive hold on its data directory, taken for
// the store's whole life: two processes selling from one database would each
// trust its own in-memory stock and sell the same units.
//
// It is an flock on a file of its own, not SQLite's locking_mode=EXCLUSIVE,
// so readers (the sqlite3 shell, backups, exports) still open the database.
// The kernel drops the lock with the process, so a crash leaves no stale
// lock behind; the file stays, holding the last holder's pid.
type dirLock struct {
	f *os.File
	// d is the directory itself, flocked too: the lock file may be
	// removed (taken for a stale pid file) while the store runs, and a
	// second process would then lock a new file of the same name; the
	// directory cannot be replaced under a running store. It also
	// carries the mark readers test (markServing).
	d *os.File
	// db is the database file, flocked too: a directory lock keeps out a
	// second store of the same directory, but not one of another
	// directory whose surge.db is a hard link of this one (a link made
	// to move the data; a "cp -al" of the whole directory links
	// surge.lock as well, and is kept out by it). That store would open the same
	// database beside a WAL of its own, sell the stock this one sells, and
	// its commits would break this one's. The flock is on the inode, so
	// every name of the file shares it. It is a lock of its own, not
	// SQLite's: SQLite's are fcntl locks, which flock does not touch.
	// The descriptor stays open until the store has closed its
	// connections: closing any descriptor of the file would drop the
	// fcntl locks SQLite holds in this process.
	db *os.File
}

// lockDatabase flocks the database file at path, creating it (empty, which
// SQLite opens as a new database) if it is missing, so that no other store
// opens it under another name while this one holds it.
func (l *dirLock) lockDatabase(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("sqlite: open %s to lock it: %w", path, err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if !errors.Is(err, errWouldBlock) {
			return fmt.Errorf("sqlite: lock %s: %w", path, err)
		}
		return fmt.Errorf("sqlite: %w: %s is held by another surge process through another name (a hard link of the database in another data directory); stop it first, or give this one a copy of its own",
			ErrLocked, path)
	}
	l.db = f
	return nil
}

// lockPoll is how often a waiting lockDir tries the lock again: the time
// requests of an upgrade wait for the new process, at most, once the old
// one released the directory.
const lockPoll = 5 * time.Millisecond

// lockDir takes the lock of dir, naming the directory and the pid of the
// process that holds it when it cannot. With wait 0 it fails at once; else
// it tries again every lockPoll until wait has passed (the new process of
// an upgrade waits there for the old one to drain and close the store),
// or until ctx ends.
//
// Polling rather than a blocking flock(2): a blocked flock cannot be
// given up after a deadline, and the poll costs the handover at most
// lockPoll.
func lockDir(ctx context.Context, dir string, wait time.Duration) (*dirLock, error) {
	if !canFlock {
		// Unlocked, a second process on the directory would sell the
		// units this one sells: refused rather than served unguarded.
		return nil, fmt.Errorf("sqlite: %w: cannot lock the data directory %s on %s (no flock(2)), and without its lock a second surge process could serve it too and sell the same units; run surge on Linux or another Unix",
			errors.ErrUnsupported, dir, runtime.GOOS)
	}
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlite: open %s to lock it: %w", dir, err)
	}
	// The file's lock (which older versions hold alone), then the
	// directory's; a failure of the second gives the first back.
	both := func() error {
		if err := flock(f); err != nil {
			return err
		}
		if err := flock(d); err != nil {
			_ = funlock(f)
			return err
		}
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		err = both()
		if !errors.Is(err, errWouldBlock) || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			f.Close()
			d.Close()
			return nil, fmt.Errorf("sqlite: waiting for the lock of %s (held by pid %s): %w", dir, holder(path), ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	if err != nil {
		f.Close()
		d.Close()
		if !errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
		}
		waited := ""
		if wait > 0 {
			waited = fmt.Sprintf(" and did not release it within %v", wait)
		}
		return nil, fmt.Errorf("sqlite: %w: %s is used by another surge process (pid %s; lock %s)%s; stop it first, or give this one another --data-dir",
			ErrLocked, dir, holder(path), path, waited)
	}
	// Before the pid: a reader that found no mark sees the pid's write
	// (openStopped). A filesystem that refuses the mark leaves it off;
	// readers then tell a running store by its writes alone, as a start
	// of an older version that sets none.
	_ = markServing(d)
	// The pid is for the message above and for operators; the lock itself
	// is the flock, so a stale pid after a crash misleads no one.
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		d.Close()
		return nil, fmt.Errorf("sqlite: write pid to %s: %w", path, err)
	}
	return &dirLock{f: f, d: d}, nil
}

// holder reads the pid the lock file holds.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown: " + err.Error()
	}
	b = bytes.TrimSpace(b)
	if _, err := strconv.Atoi(string(b)); err != nil {
		// The holder is between its lock and writing its pid.
		return "unknown"
	}
	return string(b)
}

// unlock releases the directory. Closing the descriptor drops the flock.
func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	var err error
	if l.db != nil {
		err = l.db.Close()
	}
	return errors.Join(err, l.f.Close(), l.d.Close())
}
