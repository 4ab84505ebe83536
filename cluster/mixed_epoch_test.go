package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// A batch decided while an install of the sale's next epoch is half way
// through its buckets (one swapped in, the other not yet) is refused 503
// whole (the buckets disagree on the epoch), so none of it may stay
// reserved in Redis: its orders are never committed. Each bucket's script
// had reserved its purchases before the disagreement was seen, and they
// stayed, off sale and answering their keys 503, until the leader found
// them never committed --cluster-confirm-after later and rebuilt the sale
// (a bucketed sale steered under a spike lost units for 10 s each time).
func TestBucketsMixedEpochBatchReservesNothing(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: time.Hour, NoExpiry: true})
	defer s.Close()
	sl := mustSale(t, s, "mixed", 10, 5)
	ctx := context.Background()
	rc := dialRedis(t)
	bucket := func(b string) string { return ns + ":{" + sl.ID + "#" + b + "}:" }
	epoch, err := rc.HGet(ctx, bucket("1")+"m", "epoch").Int64()
	if err != nil {
		t.Fatal(err)
	}
	// The next epoch's install has swapped bucket 1 in, not bucket 0 yet.
	if err := rc.HSet(ctx, bucket("1")+"m", "epoch", epoch+1).Err(); err != nil {
		t.Fatal(err)
	}
	u0, u1 := usersOfBucket("zero", 2, 0, 1)[0], usersOfBucket("one", 2, 1, 1)[0]
	out, _, err := reserve(s, sl.ID,
		surge.Purchase{UserID: u0, Quantity: 2, IdempotencyKey: "k0"},
		surge.Purchase{UserID: u1, Quantity: 3, IdempotencyKey: "k1"})
	if !surge.HasCode(err, surge.CodeUnavailable) {
		t.Fatalf("batch across buckets of two epochs: %+v, %v; want 503", out, err)
	}
	for _, b := range []string{"0", "1"} {
		rem, err := rc.HGet(ctx, bucket(b)+"m", "rem").Int64()
		if err != nil {
			t.Fatal(err)
		}
		pending, err := rc.ZCard(ctx, bucket(b)+"p").Result()
		if err != nil {
			t.Fatal(err)
		}
		keys, err := rc.HLen(ctx, bucket(b)+"k").Result()
		if err != nil {
			t.Fatal(err)
		}
		// 5 units each; the pending set and the keys hash hold their
		// sentinels only.
		if rem != 5 || pending != 1 || keys != 1 {
			t.Errorf("bucket %s after a batch answered 503: %d units left, %d pending members, %d key fields; want 5, 1, 1 (the batch reserved nothing)",
				b, rem, pending, keys)
		}
	}
}

// A batch one bucket's call fails for (on a Redis Cluster, the bucket's
// master unreachable or timing out; here the call errs on a key of the
// wrong type) is answered 503 whole, so the other buckets' calls, which
// ran, must not keep what they reserved for it.
func TestBucketsFailedBucketBatchReservesNothing(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: time.Hour, NoExpiry: true})
	defer s.Close()
	sl := mustSale(t, s, "onefails", 10, 5)
	ctx := context.Background()
	rc := dialRedis(t)
	bucket := func(b string) string { return ns + ":{" + sl.ID + "#" + b + "}:" }
	if err := rc.Del(ctx, bucket("1")+"u").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, bucket("1")+"u", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	u0, u1 := usersOfBucket("zero", 2, 0, 1)[0], usersOfBucket("one", 2, 1, 1)[0]
	out, _, err := reserve(s, sl.ID,
		surge.Purchase{UserID: u0, Quantity: 2, IdempotencyKey: "k0"},
		surge.Purchase{UserID: u1, Quantity: 3, IdempotencyKey: "k1"})
	if !surge.HasCode(err, surge.CodeUnavailable) {
		t.Fatalf("batch with a bucket whose call fails: %+v, %v; want 503", out, err)
	}
	rem, err := rc.HGet(ctx, bucket("0")+"m", "rem").Int64()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := rc.ZCard(ctx, bucket("0")+"p").Result()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rc.HLen(ctx, bucket("0")+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if rem != 5 || pending != 1 || keys != 1 {
		t.Errorf("bucket 0 after a batch answered 503: %d units left, %d pending members, %d key fields; want 5, 1, 1 (the batch reserved nothing)",
			rem, pending, keys)
	}
}
