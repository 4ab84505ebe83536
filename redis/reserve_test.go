package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// newSale installs a fresh sale of stock units, limit per buyer, and
// returns its stock and layout.
func newSale(t *testing.T, stock, limit int64) (*redis.Stock, redis.Layout, redis.Client, string) {
	t.Helper()
	ctx := context.Background()
	c := dial(t)
	ns := servicetest.Namespace(t)
	st := redis.New(c, ns)
	sale := surge.Sale{ID: "s1", Stock: stock, PerUserLimit: limit, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60} // the batches below hold for a minute
	if _, err := st.Install(ctx, surge.LiveState{Sale: sale, Buckets: 1, Epoch: 1}, true, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keys, _ := c.Keys(context.Background(), ns+":*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return st, redis.Layout{Sale: sale.ID, Buckets: 1}, c, ns
}

// One batch decides as if its purchases came one by one: a buyer's
// earlier purchase counts against the limit of their later one, a key's
// second use in the batch replays the first (or is a mismatch with
// another quantity), and the stock runs out in order.
func TestReserveWithinABatch(t *testing.T) {
	st, l, _, _ := newSale(t, 5, 2)
	now := time.Now()
	b := redis.Batch{Now: now, Expires: now.Add(time.Minute), Purchases: []surge.Purchase{
		{UserID: "a", Quantity: 1, IdempotencyKey: "k1"},
		{UserID: "a", Quantity: 1, IdempotencyKey: "k1"}, // replay of the first
		{UserID: "a", Quantity: 2, IdempotencyKey: "k1"}, // same key, another quantity
		{UserID: "a", Quantity: 1},                       // a's second unit
		{UserID: "a", Quantity: 1},                       // over a's limit of 2
		{UserID: "b", Quantity: 2, IdempotencyKey: "k1"}, // another buyer's k1: its own
		{UserID: "c", Quantity: 2},                       // 1 unit left: sold out
		{UserID: "c", Quantity: 1},                       // the last unit
		{UserID: "d", Quantity: 1, IdempotencyKey: "x"},  // none left
	}}
	for i := range b.Purchases {
		b.IDs = append(b.IDs, "o"+string(rune('0'+i)))
	}
	res, err := st.Reserve(context.Background(), l, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []surge.Code{surge.CodeReserved, surge.CodeReserved, surge.CodeIdempotencyMismatch, surge.CodeReserved,
		surge.CodeLimitReached, surge.CodeReserved, surge.CodeSoldOut, surge.CodeReserved, surge.CodeSoldOut}
	for i, d := range res.Decisions {
		if d.Code != want[i] {
			t.Errorf("purchase %d (%+v): %s, want %s", i, b.Purchases[i], d.Code, want[i])
		}
	}
	if r := res.Decisions[1].Replay; r.ID != "o0" || r.Quantity != 1 {
		t.Errorf("replay within the batch answers %+v, want order o0", r)
	}
	if res.Decisions[0].Replay.ID != "" {
		t.Errorf("the first use of a key answered as a replay")
	}
	if res.Remaining != 0 || res.Taken != 5 {
		t.Errorf("remaining %d, taken %d; want 0 and 5", res.Remaining, res.Taken)
	}
	// The next batch sees the counts and keys the first one wrote.
	b2 := redis.Batch{Now: now, Expires: now.Add(time.Minute), IDs: []string{"p0", "p1"}, Purchases: []surge.Purchase{
		{UserID: "b", Quantity: 2, IdempotencyKey: "k1"},
		{UserID: "a", Quantity: 1, IdempotencyKey: "k1"},
	}}
	res, err = st.Reserve(context.Background(), l, b2)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Decisions[0]; d.Code != surge.CodeReserved || d.Replay.ID != "o5" {
		t.Errorf("b's key in a later batch: %+v, want a replay of o5", d)
	}
	if d := res.Decisions[1]; d.Code != surge.CodeReserved || d.Replay.ID != "o0" {
		t.Errorf("a's key in a later batch: %+v, want a replay of o0", d)
	}
}

// A batch's new orders wait in the pending set as one member until the
// leader confirms them, together; a member of one id (as nodes before
// this format wrote) is a batch of one.
func TestPendingByBatch(t *testing.T) {
	st, l, c, ns := newSale(t, 100, 10)
	ctx := context.Background()
	now := time.Now()
	b := redis.Batch{Now: now, Expires: now.Add(time.Minute), IDs: []string{"o1", "o2", "o3"}, Purchases: []surge.Purchase{
		{UserID: "a", Quantity: 1}, {UserID: "b", Quantity: 1}, {UserID: "a", Quantity: 20},
	}}
	if _, err := st.Reserve(ctx, l, b); err != nil {
		t.Fatal(err)
	}
	pending := ns + ":{s1}:p"
	if err := c.ZAdd(ctx, pending, goredis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: "old"}).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := st.Unconfirmed(ctx, l, redis.AnyAge, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"old"}, {"o1", "o2"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("unconfirmed %v, want %v", got, want)
	}
	if err := st.Confirm(ctx, l, got); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Unconfirmed(ctx, l, redis.AnyAge, 100); err != nil || len(got) != 0 {
		t.Errorf("after Confirm: %v, %v; want none", got, err)
	}
}

// TestStaleHoldReservesNothing: ErrStaleHold promises "nothing was
// reserved" (redis/stock.go; cluster/reserve.go then decides the batch
// again with new order ids). With --cluster-buckets a hold change's
// install reaches the buckets one at a time; a batch decided between
// them meets one bucket whose hold matches and one whose hold does not.
// The matching bucket's units, buyer counts and keys must not be left
// taken by a batch answered ErrStaleHold: no order will ever be
// committed for them.
func TestStaleHoldReservesNothing(t *testing.T) {
	ctx := context.Background()
	c, st, l, ns := twoBuckets(t, 1)
	// One buyer in each bucket.
	users := map[int]string{}
	for i := 0; len(users) < 2; i++ {
		u := fmt.Sprintf("u%d", i)
		if _, ok := users[l.Bucket(u)]; !ok {
			users[l.Bucket(u)] = u
		}
	}
	// The hold change's install has reached bucket 1 but not bucket 0 yet.
	if err := c.HSet(ctx, ns+":{s1#1}:m", "hold", 120000).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	b := redis.Batch{
		Purchases: []surge.Purchase{{UserID: users[0], Quantity: 1, IdempotencyKey: "k0"}, {UserID: users[1], Quantity: 1, IdempotencyKey: "k1"}},
		IDs:       []string{"o0", "o1"},
		Now:       now, Expires: now.Add(time.Minute),
	}
	_, err := st.Reserve(ctx, l, b)
	if !errors.Is(err, redis.ErrStaleHold) {
		t.Fatalf("Reserve = %v, want ErrStaleHold", err)
	}
	rem, taken, err := st.Totals(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if taken != 0 || rem != 100 {
		t.Errorf("after a batch answered ErrStaleHold (\"nothing was reserved\"): remaining %d, taken %d; want 100, 0: "+
			"a bucket whose hold matched kept the batch's reservation, which no order will ever be committed for", rem, taken)
	}
}

// TestStaleHoldKeepsCommittedOrders: the take-back of a stale-hold batch
// leaves an earlier order of the same buyers (its id, key record, buyer
// count and pending member) as reserve.lua wrote it.
func TestStaleHoldKeepsCommittedOrders(t *testing.T) {
	ctx := context.Background()
	c, st, l, ns := twoBuckets(t, 5)
	var b0 []string
	b1 := ""
	for i := 0; len(b0) < 2 || b1 == ""; i++ {
		u := fmt.Sprintf("u%d", i)
		if l.Bucket(u) == 0 && len(b0) < 2 {
			b0 = append(b0, u)
		} else if l.Bucket(u) == 1 && b1 == "" {
			b1 = u
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	first := redis.Batch{Purchases: []surge.Purchase{{UserID: b0[0], Quantity: 2, IdempotencyKey: "k0"}},
		IDs: []string{"p0"}, Now: now, Expires: now.Add(time.Minute)}
	if _, err := st.Reserve(ctx, l, first); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		var s string
		for _, k := range []string{"u", "k", "o"} {
			m, _ := c.HGetAll(ctx, ns+":{s1#0}:"+k).Result()
			s += fmt.Sprintf("%s=%v ", k, m)
		}
		z, _ := c.ZRange(ctx, ns+":{s1#0}:p", 0, -1).Result()
		mt, _ := c.HMGet(ctx, ns+":{s1#0}:m", "rem", "tot").Result()
		return s + fmt.Sprintf("p=%v m=%v", z, mt)
	}
	before := dump()
	if err := c.HSet(ctx, ns+":{s1#1}:m", "hold", 120000).Err(); err != nil {
		t.Fatal(err)
	}
	b := redis.Batch{
		Purchases: []surge.Purchase{
			{UserID: b0[0], Quantity: 2, IdempotencyKey: "k0"}, // replay of p0
			{UserID: b0[0], Quantity: 1, IdempotencyKey: "k2"},
			{UserID: b0[1], Quantity: 3},
			{UserID: b0[1], Quantity: 1, IdempotencyKey: "k3"},
			{UserID: b0[1], Quantity: 1, IdempotencyKey: "k3"}, // replay within the batch
			{UserID: b1, Quantity: 1, IdempotencyKey: "k1"},
		},
		IDs: []string{"o0", "o1", "o2", "o3", "o4", "o5"},
		Now: now, Expires: now.Add(time.Minute),
	}
	if _, err := st.Reserve(ctx, l, b); !errors.Is(err, redis.ErrStaleHold) {
		t.Fatalf("Reserve = %v, want ErrStaleHold", err)
	}
	if after := dump(); after != before {
		t.Errorf("bucket 0 after the stale batch:\n %s\nwant as before it:\n %s", after, before)
	}
}

// twoBuckets installs sale s1 (100 units, limit units a buyer, holds of
// 60 s) in two buckets, in a namespace of its own removed at the end.
func twoBuckets(t *testing.T, limit int64) (redis.Client, *redis.Stock, redis.Layout, string) {
	t.Helper()
	c := dial(t)
	ns := servicetest.Namespace(t)
	t.Cleanup(func() {
		if keys, _ := c.Keys(context.Background(), ns+":*").Result(); len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	st := redis.New(c, ns)
	sale := surge.Sale{ID: "s1", Stock: 100, PerUserLimit: limit, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
	if _, err := st.Install(context.Background(), surge.LiveState{Sale: sale, Buckets: 2, Epoch: 1}, true, nil); err != nil {
		t.Fatal(err)
	}
	return c, st, redis.Layout{Sale: "s1", Buckets: 2}, ns
}
