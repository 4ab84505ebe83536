package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge/waitroom"
)

// TestQueuesBehindRedisBreaker: the waiting rooms' queues live in the
// store's Redis, but their calls went around the circuit breaker every
// other Redis call goes through. With Redis stalled and the breaker open
// (purchases failing), each waiting-room request (join, status, the
// ticket check of a purchase) still waited out Redis's timeout, holding
// its goroutine and connection, instead of failing at once as a purchase
// does.
func TestQueuesBehindRedisBreaker(t *testing.T) {
	s, sl, stallRedis := behindRedisBreaker(t, "room")
	qs := s.Queues(0)
	q := waitroom.Queue{SaleID: sl.ID, Schedule: waitroom.Schedule{Start: time.Now().Add(-time.Minute), Rate: 10}}
	ctx := context.Background()
	if _, _, err := qs.Join(ctx, q, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	// An answer is no failure: a buyer not in the queue does not count
	// against Redis.
	for range 10 {
		if _, err := qs.Lookup(ctx, q, "nobody", time.Now()); !errors.Is(err, waitroom.ErrNotQueued) {
			t.Fatalf("lookup of a buyer not queued: %v, want ErrNotQueued", err)
		}
	}
	if _, err := qs.Lookup(ctx, q, "alice", time.Now()); err != nil {
		t.Fatalf("lookup after ten answers 'not queued': %v (the breaker counted answers as failures?)", err)
	}

	stallRedis()
	calls := map[string]func() error{
		"join":   func() error { _, _, err := qs.Join(ctx, q, "bob", time.Now()); return err },
		"lookup": func() error { _, err := qs.Lookup(ctx, q, "alice", time.Now()); return err },
		"place":  func() error { _, _, err := qs.Place(ctx, q, "alice"); return err },
		"epoch":  func() error { _, err := qs.Epoch(ctx, q); return err },
		"count":  func() error { _, err := qs.Between(ctx, q, 0, 5); return err },
	}
	for what, call := range calls {
		began := time.Now()
		err := call()
		took := time.Since(began)
		if err == nil || took > 500*time.Millisecond {
			t.Errorf("waiting room's %s with Redis stalled and its breaker open: %v after %v; want a failure at once, as a purchase gets",
				what, err, took.Round(time.Millisecond))
		}
	}
}
