package cluster_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
)

// TestReinstallFreesOldStateInBackground: an install (a rebuild, a
// change) of a sale already in Redis replaced its per-buyer, key and
// order hashes, one entry per buyer, key and held order, and Redis freed
// the old ones inside the swap script, serving nothing else meanwhile:
// with a large sale every purchase of every sale waited on it, and the
// swap's own call outlasted the client's read timeout (1 s), failing the
// install (with buckets, at each try). Redis must free them in the
// background (lazyfreed_objects counts them), on a server of the test's
// own that nothing else uses.
func TestReinstallFreesOldStateInBackground(t *testing.T) {
	const orders = 1000 // above Redis's threshold for freeing in the background (64)
	rs := startRedis(t)
	ctx := context.Background()
	rc, err := redis.Dial(ctx, rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	st := redis.New(rc, "free")
	sl := surge.Sale{ID: "big", Name: "big", Stock: orders + 10, PerUserLimit: 1, StartsAt: time.Now().Add(-time.Minute), HoldSeconds: 3600}
	state := surge.LiveState{Sale: sl, Buckets: 1, Epoch: 1, Ever: orders}
	for i := range orders {
		o := surge.Order{ID: fmt.Sprintf("o%d", i), SaleID: sl.ID, UserID: fmt.Sprintf("u%d", i), Quantity: 1,
			Status: surge.OrderReserved, IdempotencyKey: fmt.Sprintf("k%d", i), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		state.Live = append(state.Live, o)
		state.Keyed = append(state.Keyed, o)
	}
	if ok, err := st.Install(ctx, state, false, nil); err != nil || !ok {
		t.Fatalf("first install: %v %v", ok, err)
	}
	before := memInfo(t, rc, "lazyfreed_objects")
	state.Epoch = 2
	if ok, err := st.Install(ctx, state, false, nil); err != nil || !ok {
		t.Fatalf("second install: %v %v", ok, err)
	}
	// Counted once freed: UNLINK counts its values pending first.
	eventually(t, 10*time.Second, "the values freed in the background", func() error {
		if n := memInfo(t, rc, "lazyfree_pending_objects"); n > 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	if got := memInfo(t, rc, "lazyfreed_objects") - before; got < 3 {
		t.Errorf("the three replaced hashes of %d entries each: %d freed in the background, want 3 (the rest freed by the swap script, blocking Redis)", orders, got)
	}
}

// memInfo is a count of INFO memory: lazyfreed_objects, the values the
// server has freed in the background, or lazyfree_pending_objects, those
// waiting to be.
func memInfo(t *testing.T, rc redis.Client, name string) int64 {
	t.Helper()
	info, err := rc.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in INFO memory", name)
	return 0
}

// privateRedis is a client of a redis-server of the test's own: its
// counts of objects freed in the background are no other test's.
func privateRedis(t *testing.T) redis.Client {
	t.Helper()
	c, err := redis.Dial(context.Background(), startRedis(t).url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freedInBackground runs drop and waits until Redis has freed objects in
// the background since: what drop removed went off Redis's main thread.
func freedInBackground(t *testing.T, c redis.Client, what string, drop func()) {
	t.Helper()
	before := memInfo(t, c, "lazyfreed_objects")
	drop()
	eventually(t, 5*time.Second, what+" freed in the background", func() error {
		if n := memInfo(t, c, "lazyfreed_objects"); n <= before {
			return fmt.Errorf("lazyfreed_objects %d, %d before: freed on Redis's main thread", n, before)
		}
		return nil
	})
}
