package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// A sale split over buckets still sells every unit, one buyer at a time,
// whatever buckets the buyers hash to: a dry bucket borrows from the
// others, also when no single one holds enough.
func TestBucketsSellEveryUnit(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 4})
	defer s.Close()
	sl := mustSale(t, s, "split", 37, 3)
	confirmed := map[string]surge.Order{}
	sold := int64(0)
	for i := 0; sold < sl.Stock; i++ {
		q := int64(1 + i%3)
		q = min(q, sl.Stock-sold)
		out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: q})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Code != surge.CodeReserved {
			t.Fatalf("purchase %d of %d units with %d left: %s", i, q, sl.Stock-sold, out[0].Code)
		}
		confirmed[out[0].Order.ID] = out[0].Order
		sold += q
	}
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "late", Quantity: 1})
	if err != nil || out[0].Code != surge.CodeSoldOut {
		t.Errorf("after the last unit: %+v %v, want sold_out", out, err)
	}
	truth(t, s, sl, confirmed)
}

// A transfer between buckets cut in half (a node died between the donor's
// script and the recipient's) is completed by the leader: no unit is lost.
func TestBucketsRepairInterruptedTransfer(t *testing.T) {
	ns := namespace(t)
	// The transfer is repaired once older than ConfirmAfter: long enough
	// for the test to see it in flight first (the leader's round may come
	// at any time), short enough to wait for.
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: 100 * time.Millisecond, ConfirmAfter: 2 * time.Second})
	defer s.Close()
	sl := mustSale(t, s, "cut", 10, 1)
	ctx := context.Background()
	rc := dialRedis(t)
	// The donor's half of a transfer of 3 units from bucket 0 to bucket 1.
	donor := ns + ":{" + sl.ID + "#0}:"
	if err := rc.HIncrBy(ctx, donor+"m", "rem", -3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ZAdd(ctx, donor+"xo", goredisZ(time.Now(), "1:cut|3")).Err(); err != nil {
		t.Fatal(err)
	}
	if rem, _ := s.Remaining(ctx, sl.ID); rem != 7 {
		t.Fatalf("remaining with the transfer in flight: %d, want 7", rem)
	}
	eventuallyRemaining(t, s, sl.ID, 10, 10*time.Second, "the leader completes the transfer")
	truth(t, s, sl, nil)
}

// dialRedis is a client of the test Redis, closed when the test ends.
func dialRedis(t testing.TB) redis.Client {
	t.Helper()
	rc, err := redis.Dial(context.Background(), redisURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

func goredisZ(at time.Time, member string) goredis.Z {
	return goredis.Z{Score: float64(at.UnixMilli()), Member: member}
}

// A bucket's transfer logs evicted with a transfer cut in half in them (the
// donor gave 3 units, the recipient never took them, and the record that
// would let the leader complete it is gone): the leader sees the lost log
// and rebuilds the sale, so the units are not lost for good.
func TestBucketsTransferLogEvicted(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: 100 * time.Millisecond, ConfirmAfter: time.Hour})
	defer s.Close()
	sl := mustSale(t, s, "evicted", 10, 1)
	ctx := context.Background()
	rc := dialRedis(t)
	donor := ns + ":{" + sl.ID + "#0}:"
	if err := rc.HIncrBy(ctx, donor+"m", "rem", -3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Del(ctx, donor+"xo").Err(); err != nil {
		t.Fatal(err)
	}
	eventuallyRemaining(t, s, sl.ID, 10, 5*time.Second, "the leader rebuilds the sale")
	truth(t, s, sl, nil)
}

// usersOfBucket returns n buyer ids that hash to bucket b of a sale split
// over buckets buckets.
func usersOfBucket(prefix string, buckets, b, n int) []string {
	l := redis.Layout{Buckets: buckets}
	var out []string
	for i := 0; len(out) < n; i++ {
		u := fmt.Sprintf("%s%d", prefix, i)
		if l.Bucket(u) == b {
			out = append(out, u)
		}
	}
	return out
}

// Two purchases of 3 units land in one batch, both in a bucket that ran
// dry, while the other bucket holds 5 units. 409 sold_out means "fewer
// units remain than asked for" (docs/api.md): the sale has 5 left, so at
// least the first purchase must be reserved, as with one bucket.
func TestBucketsDryBucketSellsWhatEachPurchaseFits(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2})
	defer s.Close()
	sl := mustSale(t, s, "dry", 10, 5)
	us := usersOfBucket("buyer", 2, 0, 3)
	// Empty bucket 0 (it holds 5 of the 10 units).
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: us[0], Quantity: 5})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v %v", out, err)
	}
	confirmed := map[string]surge.Order{out[0].Order.ID: out[0].Order}
	out, _, err = reserve(s, sl.ID,
		surge.Purchase{UserID: us[1], Quantity: 3},
		surge.Purchase{UserID: us[2], Quantity: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.Code == surge.CodeReserved {
			confirmed[o.Order.ID] = o.Order
		}
	}
	if out[0].Code != surge.CodeReserved {
		t.Errorf("purchase of 3 units with 5 left in the sale: %s (remaining %d), want reserved; second: %s",
			out[0].Code, out[0].Remaining, out[1].Code)
	}
	truth(t, s, sl, confirmed)
}

// A transfer's first half lost, its second half kept: the donor bucket's
// master failed over to a replica that had not received the donor's
// script (replication is asynchronous), while the recipient, on another
// master, kept the units. The donor still counts them, the recipient too:
// Redis offers units PostgreSQL does not have, though nothing it reserved
// was lost (its taken count is PostgreSQL's). The leader must see it and
// rebuild the sale.
func TestBucketsTransferFirstHalfLost(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: 100 * time.Millisecond, ConfirmAfter: 2 * time.Second})
	defer s.Close()
	sl := mustSale(t, s, "failover", 10, 10)
	ctx := context.Background()
	rc := dialRedis(t)
	us := usersOfBucket("buyer", 2, 0, 2)
	// Bucket 0 sells its 5 units.
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: us[0], Quantity: 5})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v %v", out, err)
	}
	confirmed := map[string]surge.Order{out[0].Order.ID: out[0].Order}
	// The donor's keys as a replica that missed the transfer holds them.
	donor := ns + ":{" + sl.ID + "#1}:"
	dumps := map[string]string{}
	for _, k := range []string{donor + "m", donor + "xo"} {
		d, err := rc.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		dumps[k] = d
	}
	// Bucket 0 borrows from bucket 1 and sells one more unit.
	out, _, err = reserve(s, sl.ID, surge.Purchase{UserID: us[1], Quantity: 1})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("purchase after bucket 0 ran dry: %+v %v", out, err)
	}
	confirmed[out[0].Order.ID] = out[0].Order
	// The failover: the donor's master is replaced by the replica.
	for k, d := range dumps {
		if err := rc.RestoreReplace(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if rem, _ := s.Remaining(ctx, sl.ID); rem <= 4 {
		t.Fatalf("remaining after the donor lost its half: %d, want above the truth (4)", rem)
	}
	eventuallyRemaining(t, s, sl.ID, 4, 10*time.Second,
		"the leader rebuilds a sale whose buckets offer 2 units PostgreSQL does not have (a transfer's first half lost in a failover, its second half kept)")
	truth(t, s, sl, confirmed)
}

// A node of the previous version (a cluster upgraded node by node) died
// between the two halves of a transfer: its record, "<to>:<id>|<units>",
// has no epoch, and its donor counted no units given (that version did not
// count them). Completing it, the leader must not count the units as taken
// beyond what was given: nothing is wrong with the sale, and a rebuild
// answers every purchase in flight 503.
func TestBucketsPreviousVersionTransferNoRebuild(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{Buckets: 2, Interval: 100 * time.Millisecond, ConfirmAfter: time.Second})
	defer s.Close()
	sl := mustSale(t, s, "prevcut", 10, 1)
	ctx := context.Background()
	rc := dialRedis(t)
	db := servicetest.Conn(t, ns)
	epoch := func() (e int64) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT epoch FROM sales WHERE id = $1`, sl.ID).Scan(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	before := epoch()
	// The donor's half of a transfer of 3 units from bucket 0 to bucket
	// 1, as the previous version's take.lua wrote it.
	donor := ns + ":{" + sl.ID + "#0}:"
	if err := rc.HIncrBy(ctx, donor+"m", "rem", -3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ZAdd(ctx, donor+"xo", goredisZ(time.Now(), "1:prev|3")).Err(); err != nil {
		t.Fatal(err)
	}
	eventuallyRemaining(t, s, sl.ID, 10, 10*time.Second, "the leader completes the transfer")
	// Ten leader rounds and more.
	time.Sleep(1500 * time.Millisecond)
	if after := epoch(); after != before {
		t.Errorf("the leader completed a transfer of 3 units a node of the previous version had left half done, then rebuilt "+
			"the sale (epoch %d, now %d), want no rebuild (epoch %d): it counted the 3 units as taken by bucket 1 and "+
			"never given by bucket 0, which did not count them", before, after, before)
	}
	truth(t, s, sl, nil)
}
