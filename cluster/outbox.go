package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// outboxLease elects the one node whose relay publishes the outbox: one
// publisher keeps each sale's events in order. It is its own lease, not
// the once-only jobs', so that publishing never waits behind a rebuild.
const outboxLease = "outbox"

// PendingEvents implements surge.Outbox: the node holding the outbox
// lease (taken or renewed here, every third of its time to live) reads
// the events; any other node gets none.
func (s *Store) PendingEvents(ctx context.Context, after int64, limit int) ([]surge.OrderEvent, error) {
	if s.closed.Load() {
		return nil, surge.ErrUnavailable
	}
	l, err := s.outboxLease(ctx)
	if err != nil || l == nil {
		return nil, err
	}
	var evs []surge.OrderEvent
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		evs, err = s.db.PendingEvents(ctx, *l, &s.horizon, after, limit)
		return err
	})
	if err != nil {
		return nil, unavailable("reading the outbox", err)
	}
	// The read may have waited for its horizon: the relay counts the
	// lease from the read's end, so prove it still holds there.
	if now, err := s.outboxLease(ctx); err != nil || now == nil || now.Token != l.Token {
		return nil, err
	}
	return evs, nil
}

// EventsPublished implements surge.Outbox; fenced by the outbox lease.
func (s *Store) EventsPublished(ctx context.Context, events []surge.OrderEvent) error {
	if len(events) == 0 {
		return nil
	}
	held := s.relay.Load()
	if held == nil {
		return postgres.ErrLeaseLost
	}
	err := s.call(ctx, s.pcb, func(ctx context.Context) error { return s.db.EventsPublished(ctx, held.Lease, events) })
	if errors.Is(err, postgres.ErrLeaseLost) {
		s.relay.CompareAndSwap(held, nil)
		return err
	}
	if err != nil {
		return unavailable("deleting published events", err)
	}
	return nil
}

// OutboxBacklog implements surge.Outbox.
func (s *Store) OutboxBacklog(ctx context.Context) (n int64, oldest time.Time, err error) {
	err = s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		n, oldest, err = s.db.OutboxBacklog(ctx)
		return err
	})
	if err != nil {
		return 0, time.Time{}, unavailable("reading the outbox backlog", err)
	}
	return n, oldest, nil
}

// relayLease is a term of the outbox lease and when it was last renewed.
type relayLease struct {
	postgres.Lease
	renewed time.Time
}

// outboxLease returns the outbox lease when this node holds it, renewing
// it once a third of its time to live has passed; nil when another node
// holds it.
func (s *Store) outboxLease(ctx context.Context) (*postgres.Lease, error) {
	if held := s.relay.Load(); held != nil && time.Since(held.renewed) < s.cfg.LeaseTTL/3 {
		return &held.Lease, nil
	}
	now := time.Now()
	// Another node held it at the last try: its holder renews it every
	// third of its time to live, so trying at the relay's idle pace (every
	// 20 ms) only costs PostgreSQL a row lock each time. A fifth of the
	// time to live after the try is soon enough to take over from a holder
	// that died: its lease runs for the whole time to live.
	if s.relay.Load() == nil && now.UnixNano() < s.relayWait.Load() {
		return nil, nil
	}
	l, ok, err := s.takeLease(ctx, outboxLease)
	if err != nil || !ok {
		if s.relay.Swap(nil) != nil {
			s.log.Warn("no longer publishing the outbox", "err", err)
		}
		if err != nil {
			return nil, unavailable("taking the outbox lease", err)
		}
		s.relayWait.Store(now.Add(s.cfg.LeaseTTL / 5).UnixNano())
		return nil, nil
	}
	if old := s.relay.Swap(&relayLease{Lease: l, renewed: now}); old == nil || old.Token != l.Token {
		s.log.Info("publishing the outbox", "token", l.Token)
	}
	return &l, nil
}
