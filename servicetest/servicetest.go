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

	"github.com/jackc/pgx/v5"

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
		if err := dropSchema(ctx, PostgresURL(), ns); err != nil {
			t.Logf("drop schema %s: %v", ns, err)
		}
		rc, err := redis.Dial(ctx, RedisURL())
		if err != nil {
			t.Logf("clean redis: %v", err)
			return
		}
		defer rc.Close()
		if err := forget(ctx, rc, ns); err != nil {
			t.Logf("clean redis prefix %s: %v", ns, err)
		}
	})
	return ns
}

// dropSchema removes a schema and everything in it.
func dropSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}

// forget deletes every Redis key under prefix.
func forget(ctx context.Context, c redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for _, key := range batch {
		// One key per DEL: on Redis Cluster a multi-key DEL must stay in a slot.
		if err := c.Del(ctx, key).Err(); err != nil {
			return err
		}
	}
	return nil
}
