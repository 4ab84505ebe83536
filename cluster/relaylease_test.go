package cluster_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// TestOutboxLeaseNotPolled: a node whose relay finds another node
// holding the outbox lease does not try for it on every poll (each try
// locks the lease's row in PostgreSQL), and still takes it over once the
// holder is gone.
func TestOutboxLeaseNotPolled(t *testing.T) {
	ns := namespace(t)
	ttl := time.Second
	a := openStore(t, ns, cluster.Config{LeaseTTL: ttl, Events: true})
	regB := prometheus.NewRegistry()
	// The leader loop's own lease tries would count too: one, at start.
	b := openStore(t, ns, cluster.Config{LeaseTTL: ttl, Interval: time.Hour, Metrics: regB, Events: true})
	t.Cleanup(func() { b.Close() })
	mustSale(t, a, "s", 10, 1)
	if out, _, err := reserve(a, "s", surge.Purchase{UserID: "u", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %v %v", out, err)
	}
	ctx := t.Context()
	readEvents(t, a, 1, 20*time.Second) // the holder's read
	// A's relay goes on reading at its idle pace, which renews its lease.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_, _ = a.PendingEvents(ctx, 0, 10)
			}
		}
	}()
	inserts := func() uint64 {
		var n uint64
		for _, x := range gather(t, regB)["surge_dependency_duration_seconds"].GetMetric() {
			if label(x, "dependency") == "postgres" && label(x, "op") == "insert" {
				n += x.GetHistogram().GetSampleCount()
			}
		}
		return n
	}
	before, start := inserts(), time.Now()
	const polls = 50 // a second of the relay's idle pace
	for range polls {
		if evs, err := b.PendingEvents(ctx, 0, 10); err != nil || evs != nil {
			t.Fatalf("read of a node without the lease: %v %v, want nothing", evs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A try at most every fifth of the time to live, the first at once;
	// the slack is for the leader loop, whose tries count here too.
	if tries, most := inserts()-before, uint64(time.Since(start)/(ttl/5))+3; tries > most {
		t.Errorf("%d tries for the outbox lease in %d polls while another node held it, want at most %d", tries, polls, most)
	}
	close(stop)
	<-stopped
	a.Close()
	readEvents(t, b, 1, ttl+20*time.Second) // b takes the lease over
}
