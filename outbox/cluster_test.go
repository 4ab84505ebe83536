package outbox_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// openNode opens a cluster node with the default lease (5 s): under load a
// relay's round (a read, then the acknowledgements of the batch before)
// can outlast it, and the relay must then read again rather than publish
// beside the node that took the lease over (outbox.Config.Fresh).
func openNode(t testing.TB, ns, id string) *cluster.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(), cluster.Config{
		Prefix: ns, Schema: ns, NodeID: id, NoExpiry: true, Logger: slog.New(slog.DiscardHandler), Events: true,
	})
	if err != nil {
		t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRelayCluster: two nodes share PostgreSQL, both run a relay, both
// sell; one of them at a time holds the outbox lease and publishes, and
// when it stops the other takes over. Every change is in the stream once,
// each sale's in seq order.
func TestRelayCluster(t *testing.T) {
	ns := servicetest.Namespace(t)
	nc, stream, subject := servicetest.NATS(t)
	a, b := openNode(t, ns, "a"), openNode(t, ns, "b")
	createSale(t, a, "s", 10000)
	createSale(t, a, "r", 10000)
	// b learns of the sales from PostgreSQL.
	waitFor(t, "node b to know the sales", func() bool {
		_, err1 := b.Remaining(t.Context(), "s")
		_, err2 := b.Remaining(t.Context(), "r")
		return err1 == nil && err2 == nil
	})
	stopA := runUntil(t, a, servicetest.NATSURL(), stream, subject)
	runUntil(t, b, servicetest.NATSURL(), stream, subject)
	var orders []surge.Order
	var mu sync.Mutex
	var sellers sync.WaitGroup
	for i, node := range []*cluster.Store{a, b} {
		for _, sale := range []string{"s", "r"} {
			sellers.Go(func() {
				got := reserve(t, node, sale, string(rune('a'+i))+sale, 600, 20)
				mu.Lock()
				orders = append(orders, got...)
				mu.Unlock()
			})
		}
	}
	sellers.Wait()
	// The publishing node stops mid-way: the other one takes the lease.
	stopA()
	for i := range 50 {
		o, err := b.Pay(t.Context(), orders[i].ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		orders[i] = o
	}
	drained(t, b)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}
