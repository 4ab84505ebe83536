package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge/redis"
)

// Ready reports whether this node can take purchases now: neither
// breaker is open, and Redis and PostgreSQL both answer. It only reads;
// a failed probe does not count toward the breakers. A half-open breaker
// counts as ready, or a node no load balancer sends purchases to could
// never close it again.
func (s *Store) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("cluster: store closed")
	}
	for _, cb := range []*gobreaker.CircuitBreaker[struct{}]{s.rcb, s.pcb} {
		if cb.State() == gobreaker.StateOpen {
			return fmt.Errorf("cluster: %s is unavailable (breaker open)", cb.Name())
		}
	}
	if err := s.rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cluster: redis: %w", err)
	}
	if err := s.db.Ping(ctx); err != nil {
		return fmt.Errorf("cluster: postgres: %w", err)
	}
	if sale, since := s.longestMissing(); since > s.missingAfter() {
		// A node not ready gets no purchase to find the state back
		// through: it looks for itself.
		back, err := s.stateBack(ctx, sale)
		if err != nil {
			return fmt.Errorf("cluster: check the live state of sale %s: %w", sale, err)
		}
		if back {
			s.stateFound(sale)
			return nil
		}
		return s.mismatch(sale, since)
	}
	return nil
}

// stateBack tells whether this node's Redis now holds the sale's live
// state of PostgreSQL's epoch (or the sale is gone from this node). A
// failure to read either is the error, not a verdict: readiness then names
// it rather than a prefix mismatch.
func (s *Store) stateBack(ctx context.Context, saleID string) (bool, error) {
	s.mu.RLock()
	sl, ok := s.sales[saleID]
	s.mu.RUnlock()
	if !ok {
		return true, nil
	}
	row, err := s.db.Sale(ctx, saleID)
	if err != nil {
		return false, err
	}
	epoch, _, err := s.live.Inspect(ctx, sl.layout)
	if errors.Is(err, redis.ErrNoState) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return epoch == row.Epoch, nil
}

// missingAfter is how long a sale's live state may stay missing from this
// node's Redis before the node says its Redis is not the leader's: the
// leader rebuilds a missing state within a round or two of its loop, and
// a new leader takes over within a lease's term.
func (s *Store) missingAfter() time.Duration {
	return 2*s.cfg.LeaseTTL + 5*s.cfg.Interval
}

// stateMissing notes that Redis had no live state for a sale (epoch -1),
// or one of an epoch PostgreSQL had replaced (the batch was fenced). While
// this node leads, it rebuilds it itself: only a follower's wait counts.
// Past missingAfter the mismatch is logged, once per episode.
func (s *Store) stateMissing(saleID string, epoch int64) {
	if s.Leader() {
		s.stateFound(saleID)
		return
	}
	now := time.Now()
	s.mu.Lock()
	m, ok := s.missing[saleID]
	if !ok {
		m = missingState{since: now, epoch: -1}
	}
	m.epoch = max(m.epoch, epoch)
	log := !m.logged && now.Sub(m.since) > s.missingAfter()
	m.logged = m.logged || log
	s.missing[saleID] = m
	s.mu.Unlock()
	if log {
		s.log.Error(s.mismatch(saleID, now.Sub(m.since)).Error())
	}
}

// stateDecided ends a sale's missing episode once Redis decides a batch
// in a live state newer than the one found missing or fenced: the leader
// rebuilt it. A decision with no order to commit (sold out, over the
// limit) shows it as well as a commit does.
func (s *Store) stateDecided(saleID string, epoch int64) {
	s.mu.RLock()
	m, ok := s.missing[saleID]
	s.mu.RUnlock()
	if ok && epoch > m.epoch {
		s.mu.Lock()
		if m, ok := s.missing[saleID]; ok && epoch > m.epoch {
			delete(s.missing, saleID)
		}
		s.mu.Unlock()
	}
}

// stateFound ends a sale's missing episode.
func (s *Store) stateFound(saleID string) {
	s.mu.RLock()
	_, ok := s.missing[saleID]
	s.mu.RUnlock()
	if ok {
		s.mu.Lock()
		delete(s.missing, saleID)
		s.mu.Unlock()
	}
}

// longestMissing is the sale whose live state has been missing longest
// and for how long.
func (s *Store) longestMissing() (string, time.Duration) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var sale string
	var longest time.Duration
	for id, m := range s.missing {
		if d := time.Since(m.since); sale == "" || d > longest {
			sale, longest = id, d
		}
	}
	return sale, longest
}

// missingState is one sale's episode of a missing live state.
type missingState struct {
	since  time.Time
	epoch  int64 // the newest epoch found fenced, -1 if only missing
	logged bool
}

func (s *Store) mismatch(saleID string, since time.Duration) error {
	return fmt.Errorf("cluster: sale %s has had no live state in this node's Redis (--redis-prefix %q) for %s, though the leader rebuilds a missing one within seconds: "+
		"the leader writes another Redis; every node sharing this PostgreSQL must use the same --redis-url and --redis-prefix",
		saleID, s.cfg.Prefix, since.Round(time.Second))
}
