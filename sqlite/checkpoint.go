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

// walRestartFrames is how many frames the WAL may hold before the
// checkpointer asks the writer to finish a pass (finishCheckpoint), so that
// SQLite starts the WAL over from its beginning: 64 MiB of 4 KiB pages.
//
// Why the writer: SQLite starts the WAL over only when a write transaction
// begins with every frame already copied into the database file, and a
// PASSIVE pass copies the frames up to the last commit it saw when it
// began. Under a steady stream of commits the writer commits again during
// every pass (a pass takes 2-16 ms, a commit comes every ~1 ms), so the
// WAL never started over and grew for as long as the load lasted: 140-260
// MB in 10 s at 5,300 reservations/s (docs/benchmarks.md), and a crash
// then replays all of it at start. Only the writer can copy the last
// frames with no commit in between; the background pass has done the bulk
// by then, so the writer copies a few commits' worth and syncs the
// database file. It does so at most once per pass, and only past this
// size, because the purchases that reach the writer meanwhile wait for
// that sync.
const walRestartFrames = 16384

// walSizeLimit is the journal_size_limit, in bytes: a WAL that starts over
// is cut back to it. It is the size the WAL reaches under load before the
// writer starts it over (walRestartFrames, plus a pass's worth), so under
// load the file is written over in place instead of cut and grown again
// every few seconds; once the writer is idle, idleTruncate empties it.
const walSizeLimit = "83886080" // 80 MiB

func (s *Store) checkpointer() {
	defer close(s.cpDone)
	every, idle := cmp.Or(s.opts.checkpointEvery, checkpointInterval), cmp.Or(s.opts.idleAfter, idleTruncate)
	restart := cmp.Or(s.opts.restartFrames, walRestartFrames)
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
			if mode == "PASSIVE" && err == nil && logFrames >= restart {
				select {
				case s.catchUp <- struct{}{}:
				default: // already asked
				}
			}
		}
	}
}

// finishCheckpoint, called by the writer between two group commits, copies
// what the checkpointer's last pass left in the WAL (the commits made
// during it) when the checkpointer asked, so that the next commit starts
// the WAL over (walRestartFrames says why the writer does it).
func (s *Store) finishCheckpoint() {
	select {
	case <-s.catchUp:
	default:
		return
	}
	var busy, logFrames, done int
	// Errors are not fatal, as in checkpointer: the WAL only grows until a
	// later pass succeeds. A reader still on an old snapshot makes the
	// pass stop short of the end (busy); the checkpointer asks again.
	s.busy()
	_ = s.w.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &done)
	s.idle()
}
