// Package servicetest gives tests that need the real Redis and PostgreSQL
// (cluster mode's), or NATS JetStream (the order events'), their addresses
// and an isolated dataset, and tests of the embedded store a stalled
// writer on its SQLite database (HoldSQLiteWriteLock). The servers are
// the ones scripts/services.sh starts; SURGE_TEST_REDIS_URL and
// SURGE_TEST_POSTGRES_URL point elsewhere. Tests fail, never skip, when a
// server is missing: CI must not pass by testing nothing.
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// Conn is a connection of the test's own to the test PostgreSQL with the
// schema ns on its search path, closed when the test ends.
func Conn(t testing.TB, ns string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), PostgresURL()+"&search_path="+ns)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (run scripts/services.sh): %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
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

// NATSURL is the test NATS server (with JetStream).
func NATSURL() string {
	if u := os.Getenv("SURGE_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// NATS connects to the test NATS server and returns a JetStream stream
// name and subject prefix of the test's own, whose stream it deletes when
// the test ends. It fails the test when NATS is unreachable.
func NATS(t testing.TB) (nc *nats.Conn, stream, subject string) {
	t.Helper()
	nc, err := nats.Connect(NATSURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("NATS at %s (scripts/services.sh starts it): %v", NATSURL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	stream, subject = "T_"+id, "t_"+id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if js, err := jetstream.New(nc); err == nil {
			if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Logf("delete stream %s: %v", stream, err)
			}
		}
		nc.Close()
	})
	return nc, stream, subject
}

// StreamMsg is a message read back from a JetStream stream.
type StreamMsg struct {
	Subject, MsgID string
	Data           []byte
}

// ReadStream reads every message of stream on subjects matching filter,
// in the stream's order, with an ordered consumer.
func ReadStream(t testing.TB, nc *nats.Conn, stream, filter string) []StreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatalf("consumer of %s (%s): %v", stream, filter, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("consumer of %s: %v", stream, err)
	}
	want := int(info.NumPending)
	var out []StreamMsg
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch from %s: %v", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, StreamMsg{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
			n++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch from %s: %v", stream, err)
		}
		if n == 0 {
			t.Fatalf("read %d of the %d messages of %s (%s)", len(out), want, stream, filter)
		}
	}
	return out
}

// Eventually polls f until it returns nil, failing t with what and f's
// last error after d.
func Eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
