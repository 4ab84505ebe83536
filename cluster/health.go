package cluster

import (
	"context"
	"fmt"

	"github.com/sony/gobreaker/v2"
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
	return nil
}
