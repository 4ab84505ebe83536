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

// TestChangeHeardAfterListenHalfOpen: the connection a node listens for
// announcements on goes half-open (a NAT or firewall forgets it, a
// balancer's server vanishes: no FIN, no RST, so a connection that only
// reads sees no error). The node heard of no change again until it
// restarted, only its poll catching up. It notices within about ten
// seconds, listens on a new connection and tells its engine to re-read
// every sale (""), which covers the change announced while it was cut
// off; later announcements arrive again.
func TestChangeHeardAfterListenHalfOpen(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	a := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable", cluster.Config{Prefix: ns, Schema: ns})
	defer a.Close()
	b := openStore(t, ns, cluster.Config{})
	defer b.Close()
	sl := mustSale(t, b, "listen-half-open", 10, 1)

	rename := func(name string) {
		t.Helper()
		if _, err := b.UpdateSale(ctx, sl.ID, surge.SalePatch{Name: &name}, surge.At(time.Now())); err != nil {
			t.Fatalf("rename the sale on the other node: %v", err)
		}
	}
	// heard waits up to d for node a to hear of the sale: its id, or ""
	// (re-read everything) when all is true.
	heard := func(d time.Duration, all bool) bool {
		timer := time.NewTimer(d)
		defer timer.Stop()
		for {
			select {
			case id := <-a.Changed():
				if id == sl.ID || all && id == "" {
					return true
				}
			case <-timer.C:
				return false
			}
		}
	}
	// Node a hears announcements: its listener is up.
	for i := 0; !heard(time.Second, false); i++ {
		if i == 20 {
			t.Fatal("node a never heard an announcement before the cut")
		}
		rename(fmt.Sprintf("before %d", i))
	}

	px.Strand() // every connection node a has open now, its listener's too
	// Forget what was heard before the cut (given a moment to arrive).
	time.Sleep(200 * time.Millisecond)
drain:
	for {
		select {
		case <-a.Changed():
		default:
			break drain
		}
	}
	paused := true
	if _, err := b.UpdateSale(ctx, sl.ID, surge.SalePatch{Paused: &paused}, surge.At(time.Now())); err != nil {
		t.Fatalf("pause the sale on the other node: %v", err)
	}
	if !heard(20*time.Second, true) {
		t.Fatal("node a, its listening connection half-open, never heard of the pause made on another node, " +
			"nor was told to re-read the sales, within 20 s (its listener waits for ever on a dead connection)")
	}
	// And listens again: a later change is heard at once.
	rename("after")
	if !heard(5*time.Second, false) {
		t.Fatal("node a was told to re-read the sales but does not hear later announcements")
	}
}
