// Package servicetest gives tests that need the real Redis and PostgreSQL
// (cluster mode's) their addresses and an isolated dataset. The servers are
// the ones scripts/services.sh starts; SURGE_TEST_REDIS_URL and
// SURGE_TEST_POSTGRES_URL point elsewhere. Tests fail, never skip, when a
// server is missing: CI must not pass by testing nothing.
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
)

// RedisURL is the test Redis.
func RedisURL() string {
	if u := os.Getenv("SURGE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// PostgresURL is the test PostgreSQL.
func PostgresURL() string {
	if u := os.Getenv("SURGE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Namespace returns a fresh name, usable as a PostgreSQL schema and a
// Redis key prefix, and removes both when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := postgres.DropSchema(ctx, PostgresURL(), ns); err != nil {
			t.Logf("drop schema %s: %v", ns, err)
		}
		rc, err := redis.Dial(ctx, RedisURL())
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
