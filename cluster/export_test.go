package cluster

import (
	"context"

	"github.com/surgehq/surge"
)

// InstallLive is the second step of Store.Rebuild and Store.UpdateSale:
// the new epoch's state written to Redis.
func InstallLive(ctx context.Context, s *Store, snap surge.LiveState) (bool, error) {
	return s.install(ctx, snap)
}

// LeaseHolder is the name s holds its leases under.
func LeaseHolder(s *Store) string { return s.holder }
