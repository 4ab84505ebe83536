package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestKeyedSoldOutCutOff: node B's copy of a sold-out sale's keys proves,
// then B is cut off from Redis and PostgreSQL (a network split; a process
// stopped, SIGSTOP or a long pause, is the same to it): no announcement
// reaches it and its poll of Redis fails. Meanwhile a cancel gives a unit
// back on node A, and A sells it to a new key. The retry of that 201 on B
// (a load balancer still sends it buyers) must not be answered sold_out:
// B cannot know the key did not buy, its copy proves nothing once it has
// not heard from Redis for a while. It answered sold_out from the copy
// for as long as the cut lasted.
func TestKeyedSoldOutCutOff(t *testing.T) {
	ns := namespace(t)
	rpx := servicetest.RedisProxy(t)
	ppx := servicetest.NewProxy(t, "127.0.0.1:5432")
	quiet := slog.New(slog.DiscardHandler)

	a := openStore(t, ns, cluster.Config{NodeID: "a"})
	eventuallyLeads(t, a, 10*time.Second, "node A leads")
	b := openStoreAt(t, "redis://"+rpx.Addr+"/0", "postgres://postgres@"+ppx.Addr+"/test?sslmode=disable",
		cluster.Config{NodeID: "b", Prefix: ns, Schema: ns})
	var engines []*engine.Engine
	for _, s := range []*cluster.Store{a, b} {
		// The engines poll their sales as in production (every 500 ms).
		e, err := engine.Open(context.Background(), s, engine.Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
	}
	t.Cleanup(func() {
		for i, s := range []*cluster.Store{a, b} {
			engines[i].Close()
			s.Close()
		}
	})
	// Registered last, so run first: B closes over a working network.
	t.Cleanup(func() { rpx.Resume(); ppx.Resume() })
	ea, eb := engines[0], engines[1]

	const sale = "cutoff"
	keyedSale(t, engines, sale, 3, 1)
	var orders []surge.Order
	for i := range 3 {
		out, err := buy(ea, sale, fmt.Sprintf("u%d", i), "k", 1)
		if err != nil || out.Code != surge.CodeReserved {
			t.Fatalf("purchase %d on A: %v %v", i, out.Code, err)
		}
		orders = append(orders, out.Order)
	}
	proves(t, b, eb, sale)

	rpx.Pause()
	ppx.Pause()
	if _, err := ea.Cancel(context.Background(), orders[0].ID); err != nil {
		t.Fatalf("cancel on A: %v", err)
	}
	var again surge.Order
	eventually(t, 10*time.Second, "A sells the unit again", func() error {
		out, err := buy(ea, sale, "late", "late-key", 1)
		if err != nil || out.Code != surge.CodeReserved {
			return fmt.Errorf("%v %v", out.Code, err)
		}
		again = out.Order
		return nil
	})
	// Past B's polls (500 ms) and any bound on how long it may trust what
	// it last read.
	time.Sleep(3 * time.Second)

	out, err := buy(eb, sale, "late", "late-key", 1)
	switch {
	case err == nil && out.Code == surge.CodeReserved && out.Order.ID == again.ID:
		// A replay: also right, though B cannot reach anything.
	case surge.ErrorCode(err) == surge.CodeUnavailable:
		// Right: B cannot tell, and says so; the buyer retries.
	default:
		t.Fatalf("retry on B, cut off from Redis and PostgreSQL, of the 201 A gave (order %s): code %q, err %v; "+
			"want 503 unavailable (or the replay), never a refusal of a key that bought", again.ID, out.Code, err)
	}
}
