package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/storetest"
)

// The cluster tests use the real servers (scripts/services.sh starts them)
// and fail, never skip, when they are missing.
func redisURL() string {
	if u := os.Getenv("SURGE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func postgresURL() string {
	if u := os.Getenv("SURGE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// namespace gives one dataset its own PostgreSQL schema and Redis prefix
// and removes both when the test ends.
func namespace(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := postgres.DropSchema(ctx, postgresURL(), ns); err != nil {
			t.Logf("drop schema %s: %v", ns, err)
		}
		rc, err := redis.Dial(ctx, redisURL())
		if err != nil {
			t.Logf("clean redis: %v", err)
			return
		}
		defer rc.Close()
		if err := redis.New(rc, ns).Forget(ctx); err != nil {
			t.Logf("clean redis prefix %s: %v", ns, err)
		}
	})
	return ns
}

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Open(ctx, redisURL, postgresURL, cfg)
	if err != nil {
		t.Fatalf("cluster.Open (are Redis and PostgreSQL up? run scripts/services.sh): %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) func(t *testing.T) surge.Store {
			ns := namespace(t)
			return func(t *testing.T) surge.Store { return openStore(t, ns, cluster.Config{}) }
		},
	})
}
