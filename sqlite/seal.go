package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// SealName is the clean-shutdown seal inside the data directory.
const SealName = "surge.clean"

// The seal lets a start after a clean shutdown skip the two passes over
// the whole database that guard a start after a crash: SQLite's quick
// check (3.2 s of CPU for a million orders, 311 MB) and the progress count
// (0.3 s). Close, once every connection is closed and the WAL folded into
// surge.db, records the file's size, its CRC-32C and the store's
// progress; Open reads the seal before SQLite opens the file, takes it
// away (durably) before it writes anything, and trusts it only if
// surge.db is still byte for byte what Close left and there is no WAL.
// Close seals only the file the store opened, and only if that file holds
// the store's progress (one count of the progress at the stop, 0.3 s a
// million orders): a backup restored over surge.db while the store ran,
// renamed over it or written in place, is counted at the next start and
// refused as behind. A crash leaves no seal (the running store has none),
// and any change to the file while no store held it — an
// operator's write, a copy or restore over it, a damaged block the disk
// returns — fails the checksum, so those starts run the full checks.
//
// The trade-off: structural damage SQLite did not notice while the last
// store ran (it would have failed that store's reads or writes first) is
// found at the next start that runs the quick check, not at the next clean
// restart. Removing surge.clean forces the checks (docs/architecture.md).
//
// The file: "SURGECLN" | size | progress (uint64s, little endian) |
// CRC-32C of surge.db (uint32) | CRC-32C of the 28 bytes before.
const (
	sealMagic = "SURGECLN"
	sealLen   = 32
)

// seal records that dir's database was closed cleanly with progress
// changes in it. It writes nothing if the WAL still holds pages (another
// process had the database open, so the close could not fold it in), nor
// if surge.db is no longer opened, the file the store wrote (another file
// was renamed over it while the store ran: a restore, a copy): the
// progress is the store's, not that file's, and the next start must count
// and check the file it finds.
func seal(dir string, progress int64, opened os.FileInfo) error {
	path := filepath.Join(dir, FileName)
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, opened) {
		return nil
	}
	// The same file may have been rewritten in place while the store ran
	// (cp backup surge.db truncates and writes the very inode): the seal
	// vouches for the store's progress only if the file holds it.
	if have, err := fileProgress(path); err != nil || have != progress {
		return nil
	}
	size, sum, err := checksumOf(f, path)
	if err != nil {
		return err
	}
	var rec [sealLen]byte
	copy(rec[:], sealMagic)
	binary.LittleEndian.PutUint64(rec[8:], uint64(size))
	binary.LittleEndian.PutUint64(rec[16:], uint64(progress))
	binary.LittleEndian.PutUint32(rec[24:], sum)
	binary.LittleEndian.PutUint32(rec[28:], crc32.Checksum(rec[:28], castagnoli))
	return replaceFile(dir, SealName, func(f *os.File) error {
		_, err := f.Write(rec[:])
		return err
	})
}

// fileProgress counts the progress the database file at path holds, on a
// connection of its own that reads the file as it is on disk (immutable:
// no lock, no WAL, no page the store's connections cached). The caller
// holds the directory's lock and found no WAL holding pages.
func fileProgress(path string) (int64, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?mode=ro&immutable=1")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return progressOf(context.Background(), db)
}

// replaceFile puts the file name in dir durably in place of any older
// one: write fills a temporary file, which is synced, renamed over name,
// and the directory synced. On failure the temporary file is removed and
// name is left as it was.
func replaceFile(dir, name string, write func(f *os.File) error) error {
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("sqlite: write %s: %w", path, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("sqlite: write %s: %w", path, err)
	}
	return nil
}

// removeTemps removes the temporary files of replaceFile that a process
// killed between creating and renaming one left (SIGKILL while a large
// ledger image was written): nothing reads them, and only the next write
// of the same file would replace one, which a directory whose sales no
// longer reach ImageMin never makes. The caller holds the directory's
// lock, so no other store is writing one. A file it cannot remove stays,
// harmless.
func removeTemps(dir string) {
	for _, name := range []string{ImageName, SealName} {
		_ = os.Remove(filepath.Join(dir, name+".tmp"))
	}
}

// readSeal reports whether dir's seal vouches for the database as it is:
// the progress it recorded, and true if surge.db is the file Close sealed
// and no WAL is beside it; sealed says a seal file is there at all. It
// runs before SQLite opens the database (which creates a WAL) and changes
// nothing: the seal stays until unseal, once the start knows it will
// serve the database (a start refused as older than the database must
// leave the seal to the version that wrote it).
func readSeal(dir string) (progress int64, clean, sealed bool, err error) {
	name := filepath.Join(dir, SealName)
	b, err := os.ReadFile(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, false, false, nil
	case err != nil:
		return 0, false, false, fmt.Errorf("sqlite: read %s: %w", name, err)
	}
	if len(b) != sealLen || string(b[:8]) != sealMagic || crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return 0, false, true, nil
	}
	path := filepath.Join(dir, FileName)
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return 0, false, true, nil
	}
	size, sum, err := checksum(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, false, true, nil // checkPresent has spoken; a new store starts
		}
		return 0, false, true, err
	}
	p := binary.LittleEndian.Uint64(b[16:])
	if uint64(size) != binary.LittleEndian.Uint64(b[8:]) || sum != binary.LittleEndian.Uint32(b[24:]) || p > 1<<62 {
		return 0, false, true, nil
	}
	return int64(p), true, true, nil
}

// unseal removes dir's seal, durably, before the store writes anything,
// so that a store that crashes later is checked in full at the next
// start.
func unseal(dir string) error {
	name := filepath.Join(dir, SealName)
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlite: remove %s: %w", name, err)
	}
	return syncDir(dir)
}

// checksum reads the file at path whole: its size and CRC-32C.
func checksum(path string) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: %w", err)
	}
	defer f.Close()
	return checksumOf(f, path)
}

// checksumOf reads f, the file at path, whole: its size and CRC-32C.
func checksumOf(f *os.File, path string) (int64, uint32, error) {
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: read %s: %w", path, err)
	}
	return n, h.Sum32(), nil
}
