package cluster_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/storetest"
)

// The cluster tests use the real servers (package servicetest).
var (
	redisURL    = servicetest.RedisURL
	postgresURL = servicetest.PostgresURL
	namespace   = servicetest.Namespace
)

func openStore(t testing.TB, ns string, cfg cluster.Config) *cluster.Store {
	t.Helper()
	cfg.Prefix, cfg.Schema = ns, ns
	return openStoreAt(t, redisURL(), postgresURL(), cfg)
}

func openStoreAt(t testing.TB, redisURL, postgresURL string, cfg cluster.Config) *cluster.Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Open lists the sales within one call timeout, on a connection it
	// makes first: a test's short call timeout on a loaded machine may not
	// be enough for that, which says nothing of what the test is about.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := cluster.Open(ctx, redisURL, postgresURL, cfg)
		cancel()
		if err == nil {
			return s
		}
		if surge.ErrorCode(err) != surge.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("cluster.Open (are Redis and PostgreSQL up? run scripts/services.sh): %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) func(t *testing.T) surge.Store {
			ns := namespace(t)
			// Events: the contract's outbox section reads them, as a relay does.
			return func(t *testing.T) surge.Store { return openStore(t, ns, cluster.Config{NoExpiry: true, Events: true}) }
		},
	})
}
