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
	c := dial(t)
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

// docs/cluster.md says every Redis persistence and replication setting is
// safe, Redis coming back older included (an RDB snapshot reloaded, the
// AOF's tail lost, an asynchronous replica promoted). For a waiting room,
// "older" keeps the queue's epoch (the users hash was in the snapshot) but
// loses the places handed out after it: their tickets still carry that
// epoch and a slot, and were checked against the epoch alone. So a buyer
// who joined after the snapshot can rejoin ahead of their old place and
// hold two admitting tickets, and the lost slots are handed out a second
// time (more admissions per second than admit_per_second), which is
// exactly what docs/protection.md says the epoch prevents.
func TestQueueRolledBackVoidsLostPlaces(t *testing.T) {
	ctx := context.Background()
	c := dial(t)
	prefix := servicetest.Namespace(t)
	start := time.Now().Truncate(time.Second).Add(time.Hour)
	now := start.Add(-time.Minute) // everyone joins before the start
	clock := func() time.Time { return now }
	room, err := waitroom.New(waitroom.Config{Secret: []byte("0123456789abcdef0123456789abcdef"),
		Backend: redis.NewQueues(c, prefix, 0), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sale := &surge.Sale{ID: "rb", Name: "rb", Stock: 5, PerUserLimit: 1, StartsAt: start, HoldSeconds: 60,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 1}}
	join := func(user string) waitroom.Status {
		t.Helper()
		st, _, err := room.Join(ctx, sale, user)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	join("alice") // slot 0
	join("bob")   // slot 1

	// Redis's state now is what a snapshot (or a lagging replica) holds.
	keys, err := c.Keys(ctx, prefix+":*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the queue's keys: %v, %v", keys, err)
	}
	dumps := map[string]string{}
	for _, k := range keys {
		if dumps[k], err = c.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}

	join("carol")          // slot 2
	old := join("mallory") // slot 3
	if old.AdmitAt != start.Add(3*time.Second) {
		t.Fatalf("mallory's first place opens at %v, want start+3s", old.AdmitAt)
	}

	// Redis comes back older: every key as the snapshot had it.
	for _, k := range keys {
		c.Del(ctx, k)
	}
	if left, _ := c.Keys(ctx, prefix+":*").Result(); len(left) > 0 {
		c.Del(ctx, left...)
	}
	for k, d := range dumps {
		if err := c.Restore(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Mallory joins again, before carol does: Redis no longer knows her.
	fresh := join("mallory")
	if fresh.AdmitAt.Equal(old.AdmitAt) {
		t.Fatalf("mallory's place survived the rollback; the test needs it lost")
	}
	// Both of her windows are admitting windows now, unless the ticket of
	// the lost place is refused.
	now = old.AdmitAt
	if err := room.Check(ctx, sale, "mallory", old.Ticket); err == nil {
		t.Errorf("the ticket of a place Redis lost in a rollback still admits (slot opening %v), beside the new one (opening %v): one buyer holds two admissions, and her old slot is handed out again",
			old.AdmitAt.Sub(start), fresh.AdmitAt.Sub(start))
	}
	if _, err := room.Status(ctx, sale, old.Ticket); err == nil {
		t.Errorf("the queue still reports the lost place of the old ticket as valid")
	}
	now = fresh.AdmitAt
	if err := room.Check(ctx, sale, "mallory", fresh.Ticket); err != nil {
		t.Errorf("the new ticket: %v", err)
	}
}
