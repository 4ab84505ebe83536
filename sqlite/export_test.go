package sqlite

import (
	"context"
	"time"
)

// WithTimings sets how often the checkpointer runs and how long the writer
// must be idle before the WAL is truncated, so tests need not wait for the
// defaults (or can keep every commit in the WAL with a long period).
func WithTimings(o Options, every, idle time.Duration) Options {
	o.checkpointEvery, o.idleAfter = every, idle
	return o
}

// WithRestartFrames sets how large the WAL may grow before the writer
// finishes a checkpoint pass so that it starts over (walRestartFrames).
func WithRestartFrames(o Options, frames int) Options {
	o.restartFrames = frames
	return o
}

// FlushMark makes the high-water mark cover every commit so far, as the
// marker goroutine eventually does on its own.
func (s *Store) FlushMark() error { return s.flushMark() }

// FullyChecked reports whether Open ran the quick check and the progress
// count, which a seal left by a clean shutdown spares (seal.go).
func (s *Store) FullyChecked() bool { return s.checked }

// RecordCommit records a commit's outcome as the writer does, so tests can
// make a storage failure without failing the disk.
func (s *Store) RecordCommit(err error) error { return s.wrote(err) }

// FromImage is the sales Open took from the ledger image.
func (s *Store) FromImage() int { return s.imaged }

// RefreshImage writes an image of the database as it is now, as the
// imager does once the store is idle.
func (s *Store) RefreshImage(ctx context.Context) (int, error) { return s.refreshImage(ctx, 1) }

// ErrBusy is a refresh given up because the store changed meanwhile.
var ErrBusy = errBusy

// RefreshWhileIdle refreshes the image as the imager does when it saw
// progress p, watching for a change every millisecond.
func (s *Store) RefreshWhileIdle(ctx context.Context, p int64) error {
	_, err := s.refreshWhileIdle(ctx, 1, p, time.Millisecond)
	return err
}

// Progress is the changes the store has committed.
func (s *Store) Progress() int64 { return s.g.progress.Load() }

// ImageProgress is the progress of the image on disk when it is the
// database as it stands, else -1.
func (s *Store) ImageProgress() int64 { return s.current.Load() }
