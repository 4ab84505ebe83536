package redis_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// failSwap makes every script call fail, as if the node installing died
// after staging its keys and before the script swapped them in.
type failSwap struct{}

func (failSwap) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (failSwap) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			err := errors.New("the installing node died before its swap")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (failSwap) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// An install that crashed part-way left its staging keys in Redis for
// good: the next install is of a newer epoch, with staging keys of its
// own. The next install must drop them, never those of an install of a
// newer epoch that may be under way; removing a sale drops all.
func TestCrashedInstallLeavesNoStagingKeys(t *testing.T) {
	for _, tc := range []struct {
		name       string
		crashed    int64 // the epoch of the install that crashed
		then       int64 // the epoch installed after it (0: the sale is removed)
		wantStaged []string
	}{
		{"a newer install drops it", 2, 3, nil},
		// Every staging key is begun (its sentinel) before anything is staged.
		{"an older install leaves a newer one alone", 5, 4, []string{"{s1}:s5:k", "{s1}:s5:o", "{s1}:s5:u"}},
		{"removing the sale drops it", 2, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := dial(t)
			crashing := dial(t)
			crashing.AddHook(failSwap{})
			ns := servicetest.Namespace(t)
			sale := surge.Sale{ID: "s1", Stock: 10, PerUserLimit: 2, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
			l := redis.Layout{Sale: "s1", Buckets: 1}
			if _, err := redis.New(c, ns).Install(ctx, surge.LiveState{Sale: sale, Buckets: 1, Epoch: 1}, true, nil); err != nil {
				t.Fatal(err)
			}
			held := surge.LiveState{Sale: sale, Buckets: 1, Epoch: tc.crashed, Ever: 1,
				Live: []surge.Order{{ID: "o1", SaleID: "s1", UserID: "u1", Quantity: 1, Status: surge.OrderReserved}}}
			if _, err := redis.New(crashing, ns).Install(ctx, held, false, nil); err == nil {
				t.Fatal("the crashing install succeeded")
			}
			if tc.then > 0 {
				if _, err := redis.New(c, ns).Install(ctx, surge.LiveState{Sale: sale, Buckets: 1, Epoch: tc.then}, false, nil); err != nil {
					t.Fatal(err)
				}
			} else if err := redis.New(c, ns).Remove(ctx, l); err != nil {
				t.Fatal(err)
			}
			keys, err := c.Keys(ctx, ns+":{s1}:s[0-9]*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for i := range keys {
				keys[i] = keys[i][len(ns)+1:]
			}
			sort.Strings(keys)
			if !slices.Equal(keys, tc.wantStaged) {
				t.Errorf("after an install at epoch %d crashed and then %d, Redis holds the staging keys %q; want %q",
					tc.crashed, tc.then, keys, tc.wantStaged)
			}
		})
	}
}
