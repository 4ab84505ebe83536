package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
)

// TestQueueKeysEvicted: a queue's state is six keys, and a maxmemory policy
// other than noeviction evicts keys one by one (an LRU one first takes those
// that only joins touch: last and seq, while the crowd keeps reading its
// places). docs/cluster.md counts eviction among the ways Redis loses state
// that Surge survives. A queue missing some of its keys must still hand
// each slot to one buyer, in the order they joined, and admit every buyer.
func TestQueueKeysEvicted(t *testing.T) {
	ctx := context.Background()
	c := dial(t)
	before := start.Add(-time.Minute)
	keys := func(prefix, sale string, names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, prefix+":{wr:"+sale+"}:"+n)
		}
		return out
	}
	join := func(t *testing.T, qs *redis.Queues, q waitroom.Queue, user string, now time.Time) waitroom.Entry {
		t.Helper()
		e, _, err := qs.Join(ctx, q, user, now)
		if err != nil {
			t.Fatalf("join of %s: %v", user, err)
		}
		return e
	}

	t.Run("FIFOLastAndSeqEvicted", func(t *testing.T) {
		prefix := servicetest.Namespace(t)
		qs := redis.NewQueues(c, prefix, 0)
		q := waitroom.Queue{SaleID: "f", Schedule: waitroom.Schedule{Start: start, Rate: 1}}
		for _, u := range []string{"alice", "bob", "carol"} {
			join(t, qs, q, u, before) // slots 0, 1, 2
		}
		if err := c.Del(ctx, keys(prefix, "f", "last", "seq")...).Err(); err != nil {
			t.Fatal(err)
		}
		dave := join(t, qs, q, "dave", before)
		alice, err := qs.Lookup(ctx, q, "alice", before)
		if err != nil {
			t.Fatal(err)
		}
		if dave.Slot != 3 {
			t.Errorf("dave joined fourth, after the queue's last and seq keys were evicted, and got slot %d (alice holds %d): "+
				"want slot 3, behind alice, bob and carol, and no slot shared", dave.Slot, alice.Slot)
		}
		if dave.Seq != 4 {
			t.Errorf("dave joined fourth and got seq %d, want 4", dave.Seq)
		}
		if n, err := qs.Between(ctx, q, 0, 1); err != nil || n != 1 {
			t.Errorf("%d buyers hold slot 0 (%v), want 1", n, err)
		}
	})

	t.Run("LotteryUsersEvicted", func(t *testing.T) {
		prefix := servicetest.Namespace(t)
		qs := redis.NewQueues(c, prefix, 0)
		q := waitroom.Queue{SaleID: "l", Schedule: waitroom.Schedule{Start: start, Rate: 1}, Lottery: true}
		join(t, qs, q, "alice", before)
		join(t, qs, q, "bob", before)
		// The users hash goes: alice's and bob's places are lost (their
		// tickets are refused: the epoch went with them), and they join
		// again, as carol does for the first time, before the start.
		if err := c.Del(ctx, keys(prefix, "l", "users")...).Err(); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"carol", "alice"} {
			join(t, qs, q, u, before)
		}
		for _, u := range []string{"carol", "alice"} {
			e, err := qs.Lookup(ctx, q, u, start)
			if err != nil {
				t.Fatalf("%s, who joined before the start, after the queue's users hash was evicted: the draw at the start fails: %v "+
					"(every join and read of the queue fails so, for good)", u, err)
			}
			if e.Slot < 0 || e.Slot > 1 {
				t.Errorf("%s's slot after the draw: %d, want 0 or 1 (two entrants)", u, e.Slot)
			}
		}
		if n, err := qs.Between(ctx, q, 0, 10); err != nil || n != 2 {
			t.Errorf("%d slots taken after the draw (%v), want 2: bob's lost place must not count", n, err)
		}
	})
}

// TestQueueSlotsEvictedPositions: a read of one's place and the metrics'
// count of the line read the slots key alone, which a join or a lookup
// repairs from the users hash, but a read with a ticket that carries its
// slot (every ticket once placed) makes neither. With the slots key
// evicted, every waiting buyer read position 1 and the line read empty
// (its admitted_total counter back to 0) until the next join, for good
// once joins stopped.
func TestQueueSlotsEvictedPositions(t *testing.T) {
	ctx := context.Background()
	c := dial(t)
	prefix := servicetest.Namespace(t)
	now := start.Add(-time.Minute)
	room, err := waitroom.New(waitroom.Config{Secret: make([]byte, waitroom.MinSecretLen),
		Backend: redis.NewQueues(c, prefix, 0), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sale := &surge.Sale{ID: "f", StartsAt: start,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 60}}
	var carol waitroom.Status
	for _, u := range []string{"alice", "bob", "carol"} {
		if carol, _, err = room.Join(ctx, sale, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Del(ctx, prefix+":{wr:f}:slots").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := room.Status(ctx, sale, carol.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	if st.Position != 3 {
		t.Errorf("carol, third in the line, reads position %d after the slots key was evicted, want 3", st.Position)
	}
	waiting, admitted, err := room.Line(ctx, sale)
	if err != nil || waiting != 3 || admitted != 0 {
		t.Errorf("the line after the slots key was evicted: %d waiting, %d admitted (%v); want 3 waiting", waiting, admitted, err)
	}
}
