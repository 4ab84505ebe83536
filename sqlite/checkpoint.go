package sqlite

import (
	"cmp"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// checkpointInterval is how often the WAL is copied into the database file.
// Shorter keeps the WAL (and recovery after a crash) small; each pass is a
// PASSIVE checkpoint, which never blocks the writer or readers.
const checkpointInterval = 500 * time.Millisecond

// idleTruncate is how long the writer must have been idle before the
// checkpointer truncates the WAL to zero bytes. A TRUNCATE checkpoint
// holds back the writer while it runs, so it waits for a lull; under load
// journal_size_limit bounds what a restarted WAL keeps.
const idleTruncate = 2 * time.Second

// walSizeLimit is the journal_size_limit, in bytes.
const walSizeLimit = "8388608" // 8 MiB

func (s *Store) checkpointer() {
	defer close(s.cpDone)
	every, idle := cmp.Or(s.opts.checkpointEvery, checkpointInterval), cmp.Or(s.opts.idleAfter, idleTruncate)
	t := time.NewTicker(every)
	defer t.Stop()
	seen, changed, truncated := s.g.progress.Load(), time.Now(), false
	for {
		select {
		case <-s.stopCP:
			return
		case now := <-t.C:
			if p := s.g.progress.Load(); p != seen {
				seen, changed, truncated = p, now, false
			}
			mode := "PASSIVE"
			if !truncated && now.Sub(changed) >= idle {
				mode = "TRUNCATE"
			}
			var busy, logFrames, done int
			// Errors are not fatal: the WAL keeps every commit durable; it
			// only grows until a later pass succeeds.
			err := s.cp.QueryRow(`PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logFrames, &done)
			if mode == "TRUNCATE" && err == nil && busy == 0 {
				truncated = true
			}
		}
	}
}
