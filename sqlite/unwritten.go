package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"modernc.org/sqlite/vfs"
)

// openUnwritten opens the database at path for reading through a
// connection that writes to none of the data directory's files. It is
// safe only while nothing writes the database: the caller holds the
// directory's lock (a start), or checks afterwards that nothing changed
// (openStopped). Without a WAL, surge.db alone is the database, read as
// immutable: no WAL, no -shm, no locks. With one, it is read through
// SQLite's read-only VFS over the directory (modernc.org/sqlite/vfs),
// which has no write path at all, in exclusive locking mode: SQLite then
// builds the WAL's index in its own memory from the WAL's frames and
// never opens the -shm, which may be missing (a copy of the directory
// that left it out) or a killed server's: a read-only connection would
// create the one or recover the other into it, and readonly_shm cannot
// open a missing one. viaVFS says the second; close
// closes the database, then the VFS.
func openUnwritten(path string) (db *sql.DB, viaVFS bool, close func() error, err error) {
	if _, err := os.Lstat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		db, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&immutable=1")
		if err != nil {
			return nil, false, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		return db, false, db.Close, nil
	}
	name, fsys, err := vfs.New(os.DirFS(filepath.Dir(path)))
	if err != nil {
		return nil, false, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// temp_store(MEMORY): SQLite makes its temporary files (a sort larger
	// than its cache spills to one: reconcile's sales, by creation)
	// through the connection's VFS, and this one can make none.
	db, err = sql.Open("sqlite", fileURI(filepath.Base(path))+"?vfs="+name+"&mode=ro&_pragma=locking_mode(EXCLUSIVE)&_pragma=temp_store(MEMORY)")
	if err != nil {
		fsys.Close()
		return nil, false, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The database first: the VFS refuses to close while a file is open.
	return db, true, func() error { return errors.Join(db.Close(), fsys.Close()) }, nil
}

// stampedFiles are the data directory's files a server writes: the lock
// file (every start writes its pid there), the database, the WAL and the
// -shm (stampShm).
var stampedFiles = [...]string{LockName, FileName, FileName + "-wal", FileName + "-shm"}

const (
	stampDB  = 1
	stampShm = 3
)

// dirStamp is the data directory's stampedFiles at one moment (nil: the
// file was missing).
type dirStamp [len(stampedFiles)]os.FileInfo

// stampDir stamps dir; false if a file could not be looked at.
func stampDir(dir string) (dirStamp, bool) {
	var st dirStamp
	for i, name := range stampedFiles {
		fi, err := os.Lstat(filepath.Join(dir, name))
		switch {
		case err == nil:
			st[i] = fi
		case !errors.Is(err, fs.ErrNotExist):
			return st, false
		}
	}
	return st, true
}

// same reports whether every file is the one it was, of the same size
// and modification time, or missing as it was.
func (a dirStamp) same(b dirStamp) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) {
			return false
		}
		if a[i] != nil && !(os.SameFile(a[i], b[i]) && a[i].Size() == b[i].Size() && a[i].ModTime().Equal(b[i].ModTime())) {
			return false
		}
	}
	return true
}

// stoppedDB is a database openStopped opened.
type stoppedDB struct {
	*sql.DB
	viaVFS bool
	close  func() error
	dir    string
	at     dirStamp
}

// openStopped opens the database at path without writing to its
// directory (openUnwritten) if no server has it open, else returns nil:
// the caller then reads it as a reader of a running server does, which
// creates a missing WAL and -shm and rebuilds the -shm's index. A
// directory with no -shm is one no server has open: every connection to
// a database in WAL mode keeps one (the last to close removes it). One
// with a -shm is served, or was until its server was killed (SIGKILL, a
// power cut): that server's WAL holds commits the next start recovers
// under the directory's lock, and a reader of a running server's kind
// would recover it first, rewriting the -shm. The mark every store puts
// on its directory tells the two apart (served). The directory's lock
// would tell as well, but a reader that took it, however briefly, could
// make a server starting then fail as locked out. Without the lock a
// server may start while this reads, and its checkpoints rewrite the
// file read: changed reports that afterwards, since every start marks
// the directory and writes its pid to the lock file.
func openStopped(path string) (*stoppedDB, error) {
	dir := filepath.Dir(path)
	at, ok := stampDir(dir)
	if !ok {
		return nil, nil
	}
	// After the stamp: a server that marks the directory after this look
	// writes its pid after the stamp.
	if at[stampShm] != nil {
		if held, known := served(dir); held || !known {
			return nil, nil
		}
	}
	// A surge.db that is a symbolic link has its WAL and -shm beside the
	// link's target (checkNotLinked), where a server may serve it: none
	// here says nothing, and the link's stamp never changes.
	if at[stampDB] != nil && at[stampDB].Mode()&fs.ModeSymlink != 0 {
		return nil, nil
	}
	db, viaVFS, closeDB, err := openUnwritten(path)
	if err != nil {
		return nil, err
	}
	return &stoppedDB{DB: db, viaVFS: viaVFS, close: closeDB, dir: dir, at: at}, nil
}

// errChanged marks a read of a stopped data directory that a server
// started on meanwhile.
var errChanged = errors.New("a server started on the data directory while it was read")

// changed reports, as an error, whether the directory's files changed
// since openStopped: what was read may then mix two moments.
func (s *stoppedDB) changed() error {
	// The mark as well: a pid written within the clock tick of the stamp
	// may leave the lock file's size and time as they were.
	if now, ok := stampDir(s.dir); ok && now.same(s.at) {
		if held, _ := served(s.dir); !held {
			return nil
		}
	}
	return fmt.Errorf("sqlite: %w (%s); what was read may mix two moments: run it again", errChanged, s.dir)
}

// readDB runs fn on the database at path opened for reading: without
// writing to its directory when no server has it open (openStopped), and
// again as a running server's readers do if one has it open or started
// meanwhile. viaVFS is openUnwritten's.
func readDB(ctx context.Context, path string, fn func(db *sql.DB, viaVFS bool) error) error {
	s, err := openStopped(path)
	if err != nil {
		return err
	}
	if s != nil {
		err := errors.Join(fn(s.DB, s.viaVFS), s.close())
		if s.changed() == nil {
			return err
		}
	}
	db, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer db.Close()
	return fn(db, false)
}
