package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
)

// dial is a client of the real Redis, closed at the test's end.
func dial(t *testing.T) redis.Client {
	t.Helper()
	c, err := redis.Dial(context.Background(), servicetest.RedisURL())
	if err != nil {
		t.Fatalf("redis (run scripts/services.sh): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// queues connects to the real Redis (scripts/services.sh starts it) under
// a fresh prefix, removed at the end; it fails, never skips, without it.
func queues(t *testing.T, max int) *redis.Queues {
	t.Helper()
	c := dial(t)
	return redis.NewQueues(c, servicetest.Namespace(t), max)
}

var start = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// The Redis queue answers a FIFO sequence exactly as the in-memory one.
func TestQueueFIFOMatchesMemory(t *testing.T) {
	ctx := context.Background()
	q := waitroom.Queue{SaleID: "s", Schedule: waitroom.Schedule{Start: start, Rate: 3}}
	backends := []waitroom.Backend{waitroom.NewMemory(0), queues(t, 0)}
	now := start.Add(-time.Minute)
	for i := range 60 {
		now = now.Add(time.Duration(i%7) * 100 * time.Millisecond)
		user := fmt.Sprintf("u%d", i%45) // some join twice
		var got [2]waitroom.Entry
		var created [2]bool
		for j, b := range backends {
			e, c, err := b.Join(ctx, q, user, now)
			if err != nil {
				t.Fatal(err)
			}
			got[j], created[j] = e, c
		}
		if got[0] != got[1] || created[0] != created[1] {
			t.Fatalf("join %d of %s at %v: memory %+v/%v, redis %+v/%v", i, user, now, got[0], created[0], got[1], created[1])
		}
	}
	for _, r := range [][2]int64{{0, 10}, {5, 30}, {0, 1000}, {20, 20}} {
		a, _ := backends[0].Between(ctx, q, r[0], r[1])
		b, err := backends[1].Between(ctx, q, r[0], r[1])
		if err != nil || a != b {
			t.Errorf("Between%v: memory %d, redis %d (%v)", r, a, b, err)
		}
	}
	if _, err := backends[1].Lookup(ctx, q, "nobody", now); err != waitroom.ErrNotQueued {
		t.Errorf("Lookup of a stranger: %v", err)
	}
}

// Lottery: pre-start joiners get no slot until the draw, then a
// permutation of the first slots; later joiners queue FIFO behind them.
func TestQueueLottery(t *testing.T) {
	ctx := context.Background()
	qs := queues(t, 0)
	q := waitroom.Queue{SaleID: "l", Schedule: waitroom.Schedule{Start: start, Rate: 10}, Lottery: true}
	for i := range 20 {
		e, _, err := qs.Join(ctx, q, fmt.Sprintf("early%d", i), start.Add(-time.Minute))
		if err != nil || e.Slot != waitroom.Unassigned || e.Draw == 0 {
			t.Fatalf("pre-start join: %+v %v", e, err)
		}
	}
	late, _, err := qs.Join(ctx, q, "late", start.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var slots []int64
	for i := range 20 {
		e, err := qs.Lookup(ctx, q, fmt.Sprintf("early%d", i), start.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, e.Slot)
	}
	// The draw ran at the late join, the first call after the start: it
	// hands out slots from the first free one then, as the memory backend.
	base := q.Schedule.FirstFree(start.Add(time.Millisecond))
	slices.Sort(slots)
	for i, s := range slots {
		if s != base+int64(i) {
			t.Fatalf("drawn slots %v, want %d..%d", slots, base, base+19)
		}
	}
	if late.Slot != base+20 {
		t.Errorf("late joiner's slot %d, want %d", late.Slot, base+20)
	}
}

// Concurrent joins from many goroutines (nodes) get distinct slots, and
// the bound holds.
func TestQueueConcurrentJoinsAndBound(t *testing.T) {
	ctx := context.Background()
	qs := queues(t, 50)
	q := waitroom.Queue{SaleID: "c", Schedule: waitroom.Schedule{Start: start, Rate: 100}}
	var mu sync.Mutex
	seen := map[int64]string{}
	full := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				u := fmt.Sprintf("g%d-%d", g, i)
				e, _, err := qs.Join(ctx, q, u, start.Add(time.Second))
				mu.Lock()
				if err == waitroom.ErrFull {
					full++
				} else if err != nil {
					t.Error(err)
				} else if prev, dup := seen[e.Slot]; dup {
					t.Errorf("slot %d given to %s and %s", e.Slot, prev, u)
				} else {
					seen[e.Slot] = u
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 50 || full != 30 {
		t.Errorf("%d joined and %d refused, want 50 and 30", len(seen), full)
	}
}

// TestQueueDrop: both backends forget a dropped queue whole (entries,
// slots, epoch) and leave other sales' queues alone; a dropped queue
// refuses joins (ErrDropped) rather than being made again, and dropping
// one that does not exist is no error.
func TestQueueDrop(t *testing.T) {
	ctx := context.Background()
	now := start.Add(time.Minute)
	for _, c := range []struct {
		name string
		b    waitroom.Backend
	}{{"memory", waitroom.NewMemory(0)}, {"redis", queues(t, 0)}} {
		t.Run(c.name, func(t *testing.T) {
			gone := waitroom.Queue{SaleID: "gone", Schedule: waitroom.Schedule{Start: start, Rate: 3}}
			kept := waitroom.Queue{SaleID: "kept", Schedule: gone.Schedule}
			for i := range 5 {
				for _, q := range []waitroom.Queue{gone, kept} {
					if _, _, err := c.b.Join(ctx, q, fmt.Sprintf("u%d", i), now); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := c.b.Drop(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
			if err := c.b.Drop(ctx, "never"); err != nil {
				t.Fatalf("drop of a queue that never was: %v", err)
			}
			if _, err := c.b.Lookup(ctx, gone, "u0", now); err != waitroom.ErrNotQueued {
				t.Errorf("Lookup after the drop: %v, want ErrNotQueued", err)
			}
			if n, err := c.b.Between(ctx, gone, 0, 1<<40); err != nil || n != 0 {
				t.Errorf("Between after the drop: %d, %v", n, err)
			}
			if ep, err := c.b.Epoch(ctx, gone); err != nil || ep != 0 {
				t.Errorf("Epoch after the drop: %d, %v", ep, err)
			}
			if n, err := c.b.Between(ctx, kept, 0, 1<<40); err != nil || n != 5 {
				t.Errorf("the other sale's queue: %d entries, %v; want 5", n, err)
			}
			// A join after the drop (it read the sale before the archive)
			// made the queue again, which nothing dropped any more.
			if e, _, err := c.b.Join(ctx, gone, "u9", now); !errors.Is(err, waitroom.ErrDropped) {
				t.Errorf("join after the drop: %+v, %v; want ErrDropped", e, err)
			}
			if ep, err := c.b.Epoch(ctx, gone); err != nil || ep != 0 {
				t.Errorf("Epoch after a join after the drop: %d, %v; want no queue", ep, err)
			}
		})
	}
}

// TestQueueFarSlots: slots past 10^14, which a sale admitting 1,000,000
// buyers a second reaches 3.2 years after its start (a sale with a waiting
// room may start up to 100 years before it is created, and need not end),
// are kept exactly as in memory. Lua writes a number into a string with
// "%.14g", so "1|0|126230400000001" must not become "1|0|1.262304e+14".
func TestQueueFarSlots(t *testing.T) {
	ctx := context.Background()
	qs := queues(t, 0)
	mem := waitroom.NewMemory(0)
	longAgo := start.Add(-4 * 365 * 24 * time.Hour)
	for _, lottery := range []bool{false, true} {
		t.Run(fmt.Sprintf("lottery=%v", lottery), func(t *testing.T) { farSlots(t, ctx, qs, mem, longAgo, lottery) })
	}
}

func farSlots(t *testing.T, ctx context.Context, qs *redis.Queues, mem *waitroom.Memory, longAgo time.Time, lottery bool) {
	{
		q := waitroom.Queue{SaleID: fmt.Sprintf("far-%v", lottery), Schedule: waitroom.Schedule{Start: longAgo, Rate: 1_000_000}, Lottery: lottery}
		if lottery {
			// One entrant before the start, drawn (late) by the first
			// join below: it takes the first free slot then.
			for _, b := range []waitroom.Backend{mem, qs} {
				if _, _, err := b.Join(ctx, q, "early", longAgo.Add(-time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := range 3 {
			user := fmt.Sprintf("u%d", i)
			want, _, err := mem.Join(ctx, q, user, start)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := qs.Join(ctx, q, user, start)
			if err != nil {
				t.Fatalf("lottery %v: join of %s at slot %d (%d s after the start at 1,000,000 a second): %v; memory gave %+v",
					lottery, user, want.Slot, int64(start.Sub(longAgo)/time.Second), err, want)
			}
			if got != want {
				t.Errorf("lottery %v: join of %s: redis %+v, memory %+v", lottery, user, got, want)
			}
			if _, e, err := qs.Place(ctx, q, user); err != nil || e != want {
				t.Errorf("lottery %v: place of %s: %+v, %v; want %+v", lottery, user, e, err, want)
			}
		}
		if lottery {
			want, _ := mem.Lookup(ctx, q, "early", start)
			got, err := qs.Lookup(ctx, q, "early", start)
			if err != nil || got.Slot != want.Slot || got.Seq != want.Seq {
				t.Errorf("the drawn entrant: redis %+v, %v; memory %+v", got, err, want)
			}
		}
	}
}
