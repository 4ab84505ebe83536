package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// copySales makes n copies past0 … past<n-1> of the sale tmpl, straight in
// PostgreSQL and Redis (creating them one by one takes minutes).
func copySales(t *testing.T, ns, tmpl string, n int) {
	t.Helper()
	ctx := t.Context()
	db := servicetest.Conn(t, ns)
	if _, err := db.Exec(ctx, `INSERT INTO sales SELECT (jsonb_populate_record(s, jsonb_build_object('id', 'past' || g))).*
		FROM sales s, generate_series(0, $2 - 1) g WHERE s.id = $1`, tmpl, n); err != nil {
		t.Fatal(err)
	}
	rc := dialRedis(t)
	keys, err := rc.Keys(ctx, ns+":{"+tmpl+"}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the live state of %s: %v %v", tmpl, keys, err)
	}
	dumps := map[string]string{}
	for _, k := range keys {
		if dumps[strings.TrimPrefix(k, ns+":{"+tmpl+"}:")], err = rc.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	for lo := 0; lo < n; lo += 1000 {
		p := rc.Pipeline()
		for i := lo; i < min(n, lo+1000); i++ {
			for suffix, d := range dumps {
				p.RestoreReplace(ctx, fmt.Sprintf("%s:{past%d}:%s", ns, i, suffix), 0, d)
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for lo := 0; lo < n; lo += 1000 {
			p := rc.Pipeline()
			for i := lo; i < min(n, lo+1000); i++ {
				for suffix := range dumps {
					p.Unlink(context.Background(), fmt.Sprintf("%s:{past%d}:%s", ns, i, suffix))
				}
			}
			_, _ = p.Exec(context.Background())
		}
	})
}

// TestSurveyOfManySalesWithinCallTimeout: the leader's survey of every
// sale's live state was one call, bounded by one call timeout (2 s by
// default) however many sales there are: 100,000 single-bucket sales took
// 1.5 s of it on an idle 2-core machine (6-7 s under -race), so more
// sales, more buckets or a slower link to Redis timed it out every round:
// every sale was then diagnosed one by one (several calls each),
// and the round, with the next expiry of holds, took minutes. The test
// scales the count down with a slow link to Redis: 5,000 idle sales whose
// survey answer takes about 4 s to arrive. The round must survey them (a
// few calls, not several per sale) within the default call timeout.
func TestSurveyOfManySalesWithinCallTimeout(t *testing.T) {
	const idle = 5000
	ns := namespace(t)
	reg := prometheus.NewRegistry()
	rp := servicetest.RedisProxy(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0", postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, Interval: time.Hour, NoExpiry: true, Metrics: reg})
	t.Cleanup(func() { s.Close() })
	mustSale(t, s, "live", 10, 1)
	copySales(t, ns, "live", idle)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !cluster.Round(ctx, s) { // the sales' first: each is new to the sweep
		t.Fatal("the store could not take the leader's lease")
	}
	// About 25 bytes of answer a sale: 30 KB/s makes the survey's answers
	// take 4 s, twice the call timeout; a thousand sales' take under 1 s.
	rp.Throttle(30 << 10)
	r0 := calls(t, reg, "redis")
	start := time.Now()
	if !cluster.Round(ctx, s) {
		t.Fatal("the store could not take the leader's lease")
	}
	took, n := time.Since(start), calls(t, reg, "redis")-r0
	t.Logf("a round over %d idle sales behind a slow link: %d Redis calls in %v", idle, n, took.Round(time.Millisecond))
	if n > 100 || ctx.Err() != nil {
		t.Errorf("a round over %d idle sales behind a slow link made %d Redis calls in %v (cut short at 20 s: %v); want the survey to find them idle in a few calls",
			idle, n, took.Round(time.Millisecond), ctx.Err() != nil)
	}
}
