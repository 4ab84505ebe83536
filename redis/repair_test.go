package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestRepairKeepsReceivedUntilGiven: a transfer from bucket 1 to bucket 0
// completed, and its records are old when the leader next reads them: the
// leader did not run for over an hour (every node stopped, PostgreSQL
// unreachable) while Redis kept the sale, or --cluster-confirm-after is
// over an hour, so that the leader reads every transfer's records only
// then. The leader must see the donor's record as done; the recipient's
// record of it is what tells, and must not be forgotten before the
// donor's record is read.
func TestRepairKeepsReceivedUntilGiven(t *testing.T) {
	for _, tc := range []struct {
		name         string
		age, confirm time.Duration
	}{
		{"leader away two hours", 2 * time.Hour, 10 * time.Second},
		{"confirm-after two hours", 2*time.Hour + time.Minute, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, st, l, ns := twoBuckets(t, 50)
			drainBucket0(t, st, l)
			moved, err := st.Rebalance(ctx, l, 0, 1, []int64{0, 50})
			if err != nil || moved == 0 {
				t.Fatalf("Rebalance: moved %d, %v", moved, err)
			}
			before, _, err := st.Totals(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			// Time passes: both records of the transfer are that old.
			old := float64(time.Now().Add(-tc.age).UnixMilli())
			for _, k := range []string{ns + ":{s1#1}:xo", ns + ":{s1#0}:xi"} {
				ms, err := c.ZRangeByScore(ctx, k, &goredis.ZRangeBy{Min: "-inf", Max: "(+inf"}).Result()
				if err != nil || len(ms) != 1 {
					t.Fatalf("%s: %v %v, want the transfer's one record", k, ms, err)
				}
				if err := c.ZAddXX(ctx, k, goredis.Z{Score: old, Member: ms[0]}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			n, err := st.RepairTransfers(ctx, l, time.Now().Add(-tc.confirm))
			if err != nil {
				t.Fatal(err)
			}
			after, _, err := st.Totals(ctx, l)
			if err != nil {
				t.Fatal(err)
			}
			if n != 0 || after != before {
				t.Errorf("the leader's round (confirm-after %v) %v after a completed transfer of %d units from bucket 1 to bucket 0: "+
					"%d transfer(s) completed again, remaining %d, want 0 and %d (as before): "+
					"the recipient's record was forgotten before the donor's was read, and the units were given twice",
					tc.confirm, tc.age, moved, n, after, before)
			}
		})
	}
}
