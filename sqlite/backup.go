package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// BackupInfo describes a backup Backup wrote.
type BackupInfo struct {
	Sales, Orders int64
	Bytes         int64
}

// Backup copies the database of dir to the new file to, consistently, while
// a store may be serving from dir: SQLite's VACUUM INTO reads one snapshot
// in a read transaction of its own connection. In WAL mode a reader never
// blocks the writer, so purchases go on meanwhile; only the background
// checkpoint cannot pass the snapshot until the copy is done. The data
// directory's lock is not taken: it guards against a second writer, and
// this is a reader (lock.go).
//
// The copy is written beside to under a temporary name, synced, checked
// (quick_check) and only then linked to to, which must not exist: a failed
// backup leaves nothing that looks like one, and none is overwritten.
func Backup(ctx context.Context, dir, to string) (BackupInfo, error) {
	src := filepath.Join(dir, FileName)
	if _, err := os.Stat(src); err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	if name, ok := dataDirName(dir, to); ok {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %s is the data directory's own %s, which the server or SQLite writes, removes or replaces under that name; "+
			"give a file outside the data directory", to, name)
	}
	if _, err := os.Lstat(to); err == nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %s exists; give a new file", to)
	}
	// Before the copy: this build checks and counts the copy by its own
	// layout, which a newer version's need not have ("no such table"
	// after a whole copy); it refuses such a database as a start does.
	if err := CheckVersion(ctx, dir); errors.Is(err, ErrNewer) {
		return BackupInfo{}, err
	}
	// The copy is made beside to: a directory that is missing (or no
	// directory) is the operator's to fix, and is named, not the
	// temporary file that could not be made in it.
	if st, err := os.Stat(filepath.Dir(to)); err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %s: its directory: %w", to, err)
	} else if !st.IsDir() {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %s: its directory %s: not a directory", to, filepath.Dir(to))
	}
	removeLeftovers(filepath.Dir(to), filepath.Base(to))
	tmp, err := lockedTemp(filepath.Dir(to), filepath.Base(to))
	if err != nil {
		// A directory this user may not write (a root-owned /backups),
		// or a read-only filesystem: the operator gave to, not the
		// temporary name the refusal is about.
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "open" {
			return BackupInfo{}, fmt.Errorf("sqlite: backup: %s: cannot create a file in its directory %s: %w", to, filepath.Dir(to), pe.Err)
		}
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	// VACUUM INTO wants a missing or empty file; the name was only
	// reserved. The descriptor stays open, holding the flock that tells a
	// later backup this copy is not left over, until SQLite's connections
	// to the copy are closed: closing it earlier would drop their locks.
	tmpPath := tmp.Name()
	defer func() {
		os.Remove(tmpPath)
		os.Remove(tmpPath + "-journal")
		tmp.Close()
	}()

	// A stopped directory is copied without writing to it (readDB).
	err = readDB(ctx, src, func(db *sql.DB, viaVFS bool) error {
		db.SetMaxOpenConns(1)
		// A copy begun before a server started on the directory is
		// begun again.
		if err := os.Truncate(tmpPath, 0); err != nil {
			return err
		}
		os.Remove(tmpPath + "-journal")
		// VACUUM INTO attaches its target, and SQLite reads a name
		// beginning "file:" (a relative --to in such a directory) as a
		// URI: given as one, escaped, it names the file reserved whatever
		// its path holds. It is opened through the source's VFS unless
		// told otherwise, and the read-only one cannot write it.
		target := fileURI(tmpPath)
		if viaVFS {
			target += "?vfs=" + hostVFS
		}
		_, err := db.ExecContext(ctx, `VACUUM INTO ?`, target)
		return err
	})
	if err != nil {
		if copyUnwritten(err) {
			// The source is only read: a write that failed is the
			// copy's, on to's disk, which the operator must free or
			// change (the data directory's may have room to spare).
			return BackupInfo{}, fmt.Errorf("sqlite: backup: cannot write %s (its disk is full, or fails): %w; no backup was written", to, err)
		}
		return BackupInfo{}, fmt.Errorf("sqlite: backup of %s: %w", src, err)
	}
	info, err := checkBackup(ctx, tmpPath)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrDamaged) { // damage found stays damage
			return BackupInfo{}, fmt.Errorf("sqlite: backup of %s interrupted; no backup was written: %w", src, err)
		}
		return BackupInfo{}, err
	}
	if err := syncFile(tmpPath); err != nil {
		return BackupInfo{}, err
	}
	// Link, not rename: it fails if to appeared meanwhile. A filesystem
	// without hard links (exFAT or FAT on a USB disk, many network
	// shares) refuses it; there the copy is renamed, never over a file.
	if err := os.Link(tmpPath, to); err != nil {
		if !noHardLinks(err) {
			return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
		}
		if err := renameNoReplace(tmpPath, to); err != nil {
			return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
		}
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return BackupInfo{}, err
	}
	return info, nil
}

// copyUnwritten reports whether err, VACUUM INTO's, is SQLite's failure
// to write the copy: a full disk (SQLITE_FULL, ENOSPC) or a write, sync or
// truncate the disk refused. The source is read, never written, so these
// are the copy's.
func copyUnwritten(err error) bool {
	var se *driver.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_WRITE, sqlite3.SQLITE_IOERR_FSYNC, sqlite3.SQLITE_IOERR_TRUNCATE:
		return true
	}
	return se.Code()&0xff == sqlite3.SQLITE_FULL
}

// noHardLinks reports whether err, os.Link's of a file the caller made,
// says the filesystem makes no hard links: Linux answers EPERM (FAT,
// exFAT), others EOPNOTSUPP or ENOSYS.
func noHardLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.ENOSYS)
}

// renameIfAbsent renames from to to unless to exists. Between the look
// and the rename another program could still make to, which the rename
// would replace: the way of a filesystem that has neither hard links nor
// an atomic rename that refuses to replace.
func renameIfAbsent(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s exists; give a new file", to)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(from, to)
}

// dataDirName reports whether to names, in the data directory dir however
// spelled (a symbolic link, "."), a file the store or SQLite keeps there
// by name: a backup written under one of them, absent at the moment (no
// image, no seal while serving, no WAL while stopped), is taken back
// later: a clean stop removes or replaces surge.ledger and surge.clean,
// a start's SQLite deletes a surge.db-journal and resets a WAL it cannot
// read. It returns the name.
func dataDirName(dir, to string) (string, bool) {
	name := filepath.Base(to)
	own := name == FileName || strings.HasPrefix(name, FileName+"-")
	for _, n := range []string{ImageName, SealName, MarkName, LockName} {
		own = own || name == n || name == n+".tmp"
	}
	if !own {
		return "", false
	}
	d, err1 := os.Stat(dir)
	t, err2 := os.Stat(filepath.Dir(to))
	return name, err1 == nil && err2 == nil && os.SameFile(d, t)
}

// A backup killed before it finished (SIGKILL, the OOM killer, `timeout
// -s KILL`) leaves its temporary copy, as large as the database, and its
// journal: nothing else removes them, so every such kill would leave one
// more copy on the backup disk. Each backup holds a flock on its own copy
// while it runs; a copy that can be locked belongs to no running backup,
// and the next backup to the same name removes it.

// tempPattern is the name of a temporary copy beside the backup named
// base: os.CreateTemp replaces the * with digits.
func tempPattern(base string) string { return "." + base + ".*.tmp" }

// lockedTemp creates a temporary copy beside the backup named base and
// flocks it. A backup sweeping leftovers may remove the file in the moment
// before the flock; then it is made again.
func lockedTemp(dir, base string) (*os.File, error) { return lockedTempIf(dir, base, stillNamed) }

// stillNamed reports whether f, as held, is the file its name names.
func stillNamed(f *os.File) bool {
	held, err1 := f.Stat()
	named, err2 := os.Stat(f.Name())
	return err1 == nil && err2 == nil && os.SameFile(held, named)
}

// tempTries bounds lockedTemp's attempts. A sweep removes a new copy
// only in the moment before its flock, so a second try all but always
// holds; a copy gone every time is something else removing files there
// (a cleaner, a sync tool), and trying on would spin for good, leaving a
// file behind each time.
const tempTries = 10

// lockedTempIf is lockedTemp with the check that the flocked file is
// still the one its name names (stillNamed; tests replace it).
func lockedTempIf(dir, base string, named func(*os.File) bool) (*os.File, error) {
	for range tempTries {
		f, err := os.CreateTemp(dir, tempPattern(base))
		if err != nil {
			return nil, err
		}
		if err := flock(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if named(f) {
			return f, nil
		}
		f.Close()
	}
	// A copy that failed the check may still be there (a tool that
	// rewrote it under its name; a filesystem whose inode numbers change
	// between looks): unlocked now, the sweep takes those it finds.
	removeLeftovers(dir, base)
	return nil, fmt.Errorf("the temporary copy made in %s was gone (removed or replaced) each of the %d times it was made; is another program removing files there?",
		dir, tempTries)
}

// removeLeftovers removes the temporary copies (and their journals) of
// killed backups named base in dir. Where flock does not exist it cannot
// tell them from a running backup's, and leaves them.
func removeLeftovers(dir, base string) {
	if !canFlock {
		return
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return // CreateTemp reports it
	}
	prefix, suffix, _ := strings.Cut(tempPattern(base), "*")
	for _, e := range es {
		mid, ok := strings.CutPrefix(e.Name(), prefix)
		if mid, ok = strings.CutSuffix(mid, suffix); !ok || mid == "" || strings.Trim(mid, "0123456789") != "" {
			continue
		}
		// Only a regular file can be a copy: anyone who may write to dir
		// can put a FIFO there under such a name (opening it would wait
		// for a writer for good) or a symlink to anything.
		if !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		f, err := openLeftover(name)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && flock(f) == nil {
			os.Remove(name + "-journal")
			os.Remove(name)
		}
		f.Close()
	}
}

// checkBackup runs SQLite's quick check on a backup and counts its rows.
func checkBackup(ctx context.Context, path string) (BackupInfo, error) {
	db, err := openToCheck(path, 0)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: open the copy: %w", err)
	}
	defer db.Close()
	if err := quickCheck(ctx, db, path); err != nil {
		return BackupInfo{}, err
	}
	var info BackupInfo
	err = db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sales), (SELECT count(*) FROM orders)`).Scan(&info.Sales, &info.Orders)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: count the copy's rows: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	info.Bytes = fi.Size()
	return info, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return errors.Join(f.Sync(), f.Close())
}
