package cluster

import (
	"context"
	"time"
)

// A node's instants (a batch's, and so a hold's start and end; a sale's
// status and window; a change's; an archive's) are PostgreSQL's clock as
// the node reads it: its own clock plus an offset learned off the purchase
// path, once as the store opens and then each leader loop's turn. The
// leader ends holds, and a pay or cancel judges them, on PostgreSQL's
// clock; on the node's own, a node whose clock was off gave its holds a
// wrong length (3 s behind: a hold of 5 s ended 2 s after it was made), and
// judged a sale's end and start apart from every other node (a node
// behind showed an ended sale live, sold on after its end and archived it
// as yet to start; one ahead archived it before its end).

// syncClock reads PostgreSQL's clock once and narrows this node's offset to
// it: PostgreSQL read its clock between the two readings of the node's, so
// the offset lies within their span, and the offset kept is the one in it
// nearest the last (zero at first). Nodes whose clock is PostgreSQL's (one
// machine, or clocks in sync within a round trip) so keep an offset of
// exactly zero, and a slow answer widens the span, never moves it off the
// truth. A store whose owner ends holds itself (Config.NoExpiry) keeps the
// caller's clock (holdClock): it learns nothing.
func (s *Store) syncClock(ctx context.Context) {
	if s.cfg.NoExpiry {
		return
	}
	var sent, got, pg time.Time
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		sent = s.cfg.Now()
		pg, err = s.db.Now(ctx)
		got = s.cfg.Now()
		return err
	})
	if err != nil {
		return
	}
	// clock_timestamp() has microseconds: the reading it truncated came up
	// to one later.
	lo, hi := pg.Sub(got), pg.Sub(sent)+time.Microsecond
	off := min(max(s.offsetNow(), lo), hi)
	s.offset.Store(int64(off))
	if d := off - time.Duration(s.offsetWarned.Load()); d >= time.Second || d <= -time.Second {
		s.offsetWarned.Store(int64(off))
		s.log.Warn("this node's clock is off PostgreSQL's; it reads PostgreSQL's (keep the clocks in sync: NTP)",
			"offset", off.Round(time.Millisecond).String())
	}
}

// now is PostgreSQL's present as this node reads it.
func (s *Store) now() time.Time { return s.cfg.Now().Add(s.offsetNow()) }

// offsetNow is what this node adds to its clock to read PostgreSQL's.
func (s *Store) offsetNow() time.Duration { return time.Duration(s.offset.Load()) }

// Clock implements surge.Clocked: local (the pipeline's clock, the node's)
// read as PostgreSQL's, by the offset last learned (syncClock). One atomic
// load per reading: nothing is asked of PostgreSQL on the purchase path.
// A store whose owner ends holds itself (Config.NoExpiry) keeps local.
func (s *Store) Clock(local func() time.Time) func() time.Time {
	if s.cfg.NoExpiry {
		return local
	}
	return func() time.Time { return local().Add(s.offsetNow()) }
}
