package cluster

import (
	"context"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/surgehq/surge"
)

// InstallLive is the second step of Store.Rebuild and Store.UpdateSale:
// the new epoch's state written to Redis.
func InstallLive(ctx context.Context, s *Store, snap surge.LiveState) (bool, error) {
	return s.install(ctx, snap, nil)
}

// LeaseHolder is the name s holds its leases under.
func LeaseHolder(s *Store) string { return s.holder }

// Round runs one of the leader's rounds (expiry, then repair) now, as the
// leader loop does, never at once with the loop's; false if s could not
// take the lease.
func Round(ctx context.Context, s *Store) bool {
	s.round.Lock()
	defer s.round.Unlock()
	l, _ := s.acquire(ctx)
	if l == nil {
		return false
	}
	if _, err := s.expire(ctx, *l, time.Now(), time.Time{}); err != nil {
		return false
	}
	s.repair(ctx, *l)
	return true
}

// AfterListing has fn run in each of s's leader rounds right after the
// round listed the sales (nil: nothing), never at once with a round.
func AfterListing(s *Store, fn func()) {
	s.round.Lock()
	defer s.round.Unlock()
	s.listed = fn
}

// BeforeInstall has fn run in each change of a sale on s (UpdateSale) that
// starts a new epoch, and in each of its rebuilds, once the epoch is
// committed in PostgreSQL and before its live state is installed in Redis.
func BeforeInstall(s *Store, fn func()) { s.installing.Store(&fn) }

// InstallLiveWith is InstallLive with a progress callback (nil: none),
// which the install calls as it goes, the last time after it checked that
// the sale is not archived.
func InstallLiveWith(ctx context.Context, s *Store, snap surge.LiveState, progress func()) (bool, error) {
	return s.install(ctx, snap, progress)
}

// BreakerState is the state of s's breaker of dependency ("redis",
// "postgres").
func BreakerState(s *Store, dependency string) gobreaker.State {
	if dependency == "redis" {
		return s.rcb.State()
	}
	return s.pcb.State()
}
