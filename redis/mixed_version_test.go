package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/surgehq/surge/redis"
)

// previousGive is give.lua as the version before transfers carried their
// epoch (028d59a) has it: a node of that version runs it as the second
// half of its own transfers and in its leader's repair.
var previousGive = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'rem', tonumber(ARGV[2]))
return 1
`)

// previousRepair is Stock.RepairTransfers as the previous version (028d59a)
// runs it, word for word but for the keys, which it builds as stock.go
// does: the leader's round of a cluster upgraded node by node whose leader
// is not upgraded yet.
func previousRepair(ctx context.Context, c redis.Client, ns string, buckets int, cutoff time.Time) (repaired int, err error) {
	key := func(b int, suffix string) string { return ns + ":{s1#" + strconv.Itoa(b) + "}:" + suffix }
	max := strconv.FormatInt(cutoff.UnixMilli(), 10)
	for b := range buckets {
		outs, err := c.ZRangeByScore(ctx, key(b, "xo"), &goredis.ZRangeBy{Min: "-inf", Max: max}).Result()
		if err != nil {
			return repaired, err
		}
		for _, x := range outs {
			// x is "<to>:<id>|<units>"
			id, units, ok := strings.Cut(x, "|")
			toStr, _, _ := strings.Cut(id, ":")
			to, err1 := strconv.Atoi(toStr)
			n, err2 := strconv.ParseInt(units, 10, 64)
			if !ok || err1 != nil || err2 != nil || to < 0 || to >= buckets {
				continue
			}
			applied, err := previousGive.Run(ctx, c, []string{key(to, "m"), key(to, "xi")}, id, n, time.Now().UnixMilli()).Int64()
			if err != nil {
				return repaired, err
			}
			if applied == 1 {
				repaired++
			}
			if err := c.ZRem(ctx, key(b, "xo"), x).Err(); err != nil {
				return repaired, err
			}
		}
		old := strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
		if err := c.ZRemRangeByScore(ctx, key(b, "xi"), "-inf", old).Err(); err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// failGive is a client hook that, while on, fails the second half of a
// transfer (give.lua, see beforeGive) without sending it: the node died
// between the transfer's two scripts.
type failGive struct{ on bool }

func (*failGive) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *failGive) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		a := cmd.Args()
		if h.on && len(a) >= 5 && fmt.Sprint(a[0]) == "evalsha" && fmt.Sprint(a[2]) == "2" && strings.HasSuffix(fmt.Sprint(a[4]), ":xi") {
			err := errors.New("the node died between the transfer's two scripts")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (*failGive) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestTransferRecordsReadByPreviousVersion: a cluster upgraded node by
// node (docs/operations.md) runs this version's nodes beside a leader of
// the previous one for as long as the leader's node is not upgraded. The
// records this version's transfers between buckets leave must still be
// ones that leader reads: it completes a transfer a node left half done
// (and one a new epoch's install made the recipient refuse, which
// give.lua leaves to the leader), and it forgets a completed one's record
// before it forgets, after an hour, the recipient's record of it, which
// alone tells this version's leader, once it leads, that the units were
// given.
func TestTransferRecordsReadByPreviousVersion(t *testing.T) {
	ctx := context.Background()

	t.Run("cut in half", func(t *testing.T) {
		c, st, l, ns := twoBuckets(t, 50)
		drainBucket0(t, st, l)
		hook := &failGive{on: true}
		c.AddHook(hook)
		if _, err := st.Rebalance(ctx, l, 0, 1, []int64{0, 50}); err == nil {
			t.Fatal("the transfer's second half did not fail")
		}
		hook.on = false
		cut, _, err := st.Totals(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := previousRepair(ctx, c, ns, 2, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		rem, _, err := st.Totals(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		left, _ := c.ZCard(ctx, ns+":{s1#1}:xo").Result()
		if rem != 50 || left != 1 { // 1: install's sentinel
			t.Errorf("a transfer from bucket 1 to bucket 0 cut in half left %d units on sale; the previous version's leader "+
				"(a cluster upgraded node by node) then left %d units on sale and %d record(s) of the transfer, want 50 units "+
				"(all PostgreSQL has free) and none: it cannot read this version's record, and %d units stay off sale "+
				"until its node is upgraded", cut, rem, left-1, 50-rem)
		}
	})

	t.Run("completed, leader an hour on", func(t *testing.T) {
		c, st, l, ns := twoBuckets(t, 50)
		drainBucket0(t, st, l)
		moved, err := st.Rebalance(ctx, l, 0, 1, []int64{0, 50})
		if err != nil || moved == 0 {
			t.Fatalf("Rebalance: moved %d, %v", moved, err)
		}
		// The previous version's leader, every round: the transfer is
		// older than its confirm-after.
		if _, err := previousRepair(ctx, c, ns, 2, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		// An hour and more passes with that leader in office.
		old := float64(time.Now().Add(-2 * time.Hour).UnixMilli())
		for _, k := range []string{ns + ":{s1#1}:xo", ns + ":{s1#0}:xi"} {
			ms, err := c.ZRangeByScore(ctx, k, &goredis.ZRangeBy{Min: "-inf", Max: "(+inf"}).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if err := c.ZAddXX(ctx, k, goredis.Z{Score: old, Member: m}).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := previousRepair(ctx, c, ns, 2, time.Now().Add(-10*time.Second)); err != nil {
			t.Fatal(err)
		}
		// Its node is upgraded: this version's leader takes over.
		n, err := st.RepairTransfers(ctx, l, time.Now().Add(-10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		rem, _, err := st.Totals(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || rem != 50 {
			t.Errorf("a completed transfer of %d units from bucket 1 to bucket 0, the previous version's leader in office over "+
				"an hour, then this version's: %d transfer(s) completed again, %d units on sale, want 0 and 50 (all PostgreSQL "+
				"has free): the previous leader never forgot the record it could not read, but forgot the recipient's, and "+
				"the units were given twice, %d units PostgreSQL does not have", moved, n, rem, rem-50)
		}
	})
}
