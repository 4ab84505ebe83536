package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
)

// In cluster mode places live in Redis, so a node's restart keeps them and
// tickets stay good on every node; if Redis loses a queue, its epoch goes
// with it and the tickets of the lost places are refused, so a buyer
// cannot hold one ticket of before the loss and one of after (issue 9,
// item 13).
func TestQueueEpoch(t *testing.T) {
	ctx := context.Background()
	c, err := redis.Dial(ctx, servicetest.RedisURL())
	if err != nil {
		t.Fatalf("redis (run scripts/services.sh): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	prefix := servicetest.Namespace(t)
	now := time.Now()
	clock := func() time.Time { return now }
	secret := []byte("0123456789abcdef0123456789abcdef")
	room := func() *waitroom.Room {
		r, err := waitroom.New(waitroom.Config{Secret: secret, Backend: redis.NewQueues(c, prefix, 0), Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sale := &surge.Sale{ID: "e", Name: "e", Stock: 5, PerUserLimit: 1, StartsAt: now.Add(-time.Minute), HoldSeconds: 60,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 3600}}

	q := waitroom.Queue{SaleID: "e", Schedule: waitroom.Schedule{Start: sale.StartsAt, Rate: 1}}
	if e, err := redis.NewQueues(c, prefix, 0).Epoch(ctx, q); err != nil || e != 0 {
		t.Fatalf("epoch of a queue nobody joined: %d, %v; want 0", e, err)
	}
	first := room()
	st, _, err := first.Join(ctx, sale, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// Another node, or this one restarted: same places, same tickets.
	again := room()
	if err := again.Check(ctx, sale, "alice", st.Ticket); err != nil {
		t.Fatalf("the ticket on another node: %v", err)
	}
	if _, err := again.Status(ctx, sale, st.Ticket); err != nil {
		t.Fatalf("status on another node: %v", err)
	}
	again2, created, err := again.Join(ctx, sale, "alice")
	if err != nil || created || again2.AdmitAt != st.AdmitAt {
		t.Fatalf("rejoin on another node: %+v created=%v err=%v, want the same place", again2, created, err)
	}

	// Redis loses the queue (a flush, a failover to an empty replica).
	n, err := c.Del(ctx, prefix+":{wr:e}:users", prefix+":{wr:e}:seq", prefix+":{wr:e}:slots", prefix+":{wr:e}:last").Result()
	if err != nil || n == 0 {
		t.Fatalf("delete the queue: %d, %v", n, err)
	}
	var e *surge.Error
	_, err = again.Status(ctx, sale, st.Ticket)
	if !errors.As(err, &e) || e.Code != surge.CodeInvalidTicket {
		t.Fatalf("status of a lost place: %v, want invalid_ticket", err)
	}
	if err := again.Check(ctx, sale, "alice", st.Ticket); !errors.As(err, &e) || e.Code != surge.CodeNotAdmitted {
		t.Fatalf("purchase with a lost place: %v, want not_admitted", err)
	}
	fresh, _, err := again.Join(ctx, sale, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Check(ctx, sale, "alice", fresh.Ticket); err != nil {
		t.Fatalf("the new ticket: %v", err)
	}
	if err := first.Check(ctx, sale, "alice", st.Ticket); err == nil {
		t.Fatal("the ticket of the lost place still buys beside the new one")
	}
}
