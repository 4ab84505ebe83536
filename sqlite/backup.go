package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	if _, err := os.Lstat(to); err == nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %s exists; give a new file", to)
	}
	tmp, err := os.CreateTemp(filepath.Dir(to), "."+filepath.Base(to)+".*.tmp")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	// VACUUM INTO wants a missing or empty file; the name was only reserved.
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath)

	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: open %s: %w", src, err)
	}
	db.SetMaxOpenConns(1)
	_, err = db.ExecContext(ctx, `VACUUM INTO ?`, tmpPath)
	db.Close()
	if err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup of %s: %w", src, err)
	}
	info, err := checkBackup(ctx, tmpPath)
	if err != nil {
		if ctx.Err() != nil {
			return BackupInfo{}, fmt.Errorf("sqlite: backup of %s interrupted; no backup was written: %w", src, err)
		}
		return BackupInfo{}, err
	}
	if err := syncFile(tmpPath); err != nil {
		return BackupInfo{}, err
	}
	// Link, not rename: it fails if to appeared meanwhile.
	if err := os.Link(tmpPath, to); err != nil {
		return BackupInfo{}, fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return BackupInfo{}, err
	}
	return info, nil
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
