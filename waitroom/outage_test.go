package waitroom_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/waitroom"
)

// TestRedisOutageIsUnavailable: in cluster mode the waiting room's queues
// live in Redis. When Redis cannot be reached, a purchase's ticket check,
// a join and a status read must answer 503 unavailable with a retry (as
// every other Redis failure does), not an untyped error that the API turns
// into 500 internal without Retry-After.
func TestRedisOutageIsUnavailable(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC)
	clock := func() time.Time { return now }
	sale := &surge.Sale{ID: "s", StartsAt: now.Add(-10 * time.Second),
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 100, Policy: surge.QueueFIFO, TicketSeconds: 300}}

	// A ticket issued while Redis was up (the same secret: any node's).
	up, err := waitroom.New(waitroom.Config{Secret: secret, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := up.Join(context.Background(), sale, "alice")
	if err != nil {
		t.Fatal(err)
	}

	// Redis down: nothing listens on port 1.
	rc := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rc.Close()
	down, err := waitroom.New(waitroom.Config{Secret: secret, Now: clock, Backend: redis.NewQueues(rc, "g-outage", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with Redis down: no error", what)
			return
		}
		if code := surge.ErrorCode(err); code != surge.CodeUnavailable {
			t.Errorf("%s with Redis down: code %q (%v), want unavailable (503 + Retry-After); the API answers 500 internal", what, code, err)
		}
	}
	check("purchase ticket check", down.Check(ctx, sale, "alice", st.Ticket))
	_, _, err = down.Join(ctx, sale, "bob")
	check("join", err)
	_, err = down.Status(ctx, sale, st.Ticket)
	check("status", err)
}
