package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/cluster"
)

// TestSharedLimitKeyErrorIsNoOutage: the shared rate limit's report goes
// through the Redis breaker, and Redis refusing one key's call (here a key
// of another type where the buyer's limit lives, or a value the limit's
// script cannot read) counted as a Redis
// failure. A buyer who kept buying had his key in every report, so five
// reports in a row opened the breaker: every purchase of the node, every
// buyer's, was refused 503 and /readyz said Redis was down, though Redis
// answered everything else. A reply from Redis is no outage.
func TestSharedLimitKeyErrorIsNoOutage(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{BreakerOpen: time.Minute})
	defer s.Close()
	sl := mustSale(t, s, "hot", 100, 1)
	ctx := context.Background()
	rc := dialRedis(t)
	if err := rc.RPush(ctx, ns+":rl:buyer:mallory", "not a GCRA time").Err(); err != nil {
		t.Fatal(err)
	}
	// A value the limit's script cannot read fails its call too.
	if err := rc.Set(ctx, ns+":rl:buyer:trudy", "not a GCRA time", 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := admission.NewDistributed(admission.NewKeyed(1000, 1000, 1000, time.Minute),
		s.SharedLimit("buyer", 1000, 1000), time.Hour, nil) // flushed by hand
	defer d.Close()
	for range 10 {
		for _, k := range []string{"mallory", "mallory", "trudy", "trudy"} { // a key is reported from its second request on
			if ok, _ := d.Allow(k, time.Now()); !ok {
				t.Fatalf("%s refused by the node's own bucket", k)
			}
		}
		d.Flush()
	}
	if err := s.Ready(ctx); err != nil {
		t.Errorf("after ten reports in which Redis refused two buyers' keys, Redis answering: not ready: %v", err)
	}
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "alice", IdempotencyKey: "k", Quantity: 1})
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("another buyer's purchase after ten reports in which Redis refused mallory's and trudy's limit keys: %+v, %v; want reserved", out, err)
	}
}
