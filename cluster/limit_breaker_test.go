package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestSharedLimitBehindRedisBreaker: the shared rate limits (the per-buyer
// and per-sale limits every node shares, admission.Distributed) live in
// the store's Redis, but their calls went around the circuit breaker every
// other Redis call goes through. With Redis stalled and the breaker open
// (purchases failing at once), each report of the requests a node admitted
// still waited out Redis's timeout, holding a connection, and so did the
// last report of a stopping node, once per limit.
func TestSharedLimitBehindRedisBreaker(t *testing.T) {
	s, _, stallRedis := behindRedisBreaker(t, "limited")
	l := s.SharedLimit("buyer", 10, 5)
	ctx := context.Background()
	if _, err := l.Spend(ctx, map[string]int64{"alice": 1}); err != nil {
		t.Fatal(err)
	}
	// An answer is no failure: keys over the limit do not count against
	// Redis.
	for range 10 {
		if blocked, err := l.Spend(ctx, map[string]int64{"bob": 10}); err != nil || blocked["bob"] <= 0 {
			t.Fatalf("spend over the limit: %v, %v; want bob blocked", blocked, err)
		}
	}
	if _, err := l.Spend(ctx, map[string]int64{"carol": 1}); err != nil {
		t.Fatalf("spend after ten answers 'blocked': %v (the breaker counted answers as failures?)", err)
	}

	stallRedis()
	began := time.Now()
	_, err := l.Spend(ctx, map[string]int64{"alice": 1})
	if took := time.Since(began); err == nil || took > 500*time.Millisecond {
		t.Errorf("shared limit's report with Redis stalled and its breaker open: %v after %v; want a failure at once, as a purchase gets",
			err, took.Round(time.Millisecond))
	}
}

// behindRedisBreaker opens a store whose Redis is behind a proxy, with a
// breaker that stays open a minute, and makes it a sale of id. stall
// stalls Redis (until the test ends) and trips the breaker with five
// purchases, checking that the next one fails at once.
func behindRedisBreaker(t *testing.T, id string) (s *cluster.Store, sl surge.Sale, stall func()) {
	t.Helper()
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s = openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL()+"&search_path="+ns,
		cluster.Config{Prefix: ns, Schema: ns, BreakerOpen: time.Minute})
	t.Cleanup(func() { s.Close() })
	sl = mustSale(t, s, id, 10, 1)
	return s, sl, func() {
		t.Helper()
		rp.Pause()
		t.Cleanup(rp.Resume)
		// Purchases trip the Redis breaker (five failures).
		for i := range 5 {
			_, _, err := reserve(s, sl.ID, surge.Purchase{UserID: fmt.Sprint("u", i), Quantity: 1})
			if surge.ErrorCode(err) != surge.CodeUnavailable {
				t.Fatalf("purchase %d with Redis stalled: %v, want unavailable", i, err)
			}
		}
		if _, took, err := reserve(s, sl.ID, surge.Purchase{UserID: "u", Quantity: 1}); surge.ErrorCode(err) != surge.CodeUnavailable || took > 500*time.Millisecond {
			t.Fatalf("purchase with the breaker open: %v after %v, want unavailable at once", err, took)
		}
	}
}
