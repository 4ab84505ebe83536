package outbox_test

import (
	"context"
	"log/slog"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
)

// outboxStore is a store whose outbox a relay publishes.
type outboxStore interface {
	surge.Store
	surge.Outbox
}

// TestRelayAgeGrowsWhileStoreUnreadable: while the relay cannot read the
// store, nothing is published, so the age of the oldest event waiting must
// go on growing; frozen at its last value, it kept the outbox-lag alert
// (SurgeOrderEventsDelayed) silent for the whole outage.
func TestRelayAgeGrowsWhileStoreUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (s outboxStore, cut func())
	}{
		{"embedded, store closed", func(t *testing.T) (outboxStore, func()) {
			s := openStore(t)
			return s, func() { s.Close() }
		}},
		{"cluster, PostgreSQL cut", func(t *testing.T) (outboxStore, func()) {
			u, err := neturl.Parse(servicetest.PostgresURL())
			if err != nil {
				t.Fatal(err)
			}
			pgp := servicetest.NewProxy(t, u.Host)
			u.Host = pgp.Addr
			ns := servicetest.Namespace(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := cluster.Open(ctx, servicetest.RedisURL(), u.String(), cluster.Config{
				Prefix: ns, Schema: ns, NodeID: "a", NoExpiry: true, Logger: slog.New(slog.DiscardHandler), Events: true,
			})
			if err != nil {
				t.Fatalf("cluster.Open (run scripts/services.sh): %v", err)
			}
			t.Cleanup(func() { s.Close() })
			t.Cleanup(pgp.Restore) // before the close: it gives up its leases
			return s, pgp.Cut
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cut := tc.open(t)
			createSale(t, s, "a", 100)
			reserve(t, s, "a", "u", 10, 10)
			// NATS unreachable: the events wait in the outbox.
			np := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
			np.Cut()
			reg := prometheus.NewRegistry()
			m, err := metrics.NewOutbox(reg)
			if err != nil {
				t.Fatal(err)
			}
			run(t, s, "nats://"+np.Addr, "SURGE_T_STORE_DOWN", "t.storedown", m)
			const age = "surge_outbox_oldest_age_seconds"
			waitFor(t, "the figures to show the outbox", func() bool {
				return figure(t, reg, "surge_outbox_lag_events") == 10 && figure(t, reg, age) > 0
			})

			cut()
			at := figure(t, reg, age)
			deadline := time.Now().Add(15 * time.Second)
			for figure(t, reg, age) < at+3 {
				if time.Now().After(deadline) {
					t.Fatalf("%s stayed at %.2f s for 15 s while the store could not be read (%.2f s at the cut)",
						age, figure(t, reg, age), at)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// hanging is a real store whose outbox reads hang once stalled, as they
// do on a disk that stopped answering: until the relay stops.
type hanging struct {
	outboxStore
	stalled atomic.Bool
}

func (h *hanging) wait(ctx context.Context) {
	if h.stalled.Load() {
		<-ctx.Done()
	}
}

func (h *hanging) PendingEvents(ctx context.Context, after int64, limit int) ([]surge.OrderEvent, error) {
	h.wait(ctx)
	return h.outboxStore.PendingEvents(ctx, after, limit)
}

func (h *hanging) OutboxBacklog(ctx context.Context) (int64, time.Time, error) {
	h.wait(ctx)
	return h.outboxStore.OutboxBacklog(ctx)
}

// TestRelayAgeGrowsWhileStoreHangs: a read of the store that hangs (a
// stalled disk) held the relay, and the figures it sets, where they were:
// surge_outbox_oldest_age_seconds stopped growing while nothing was
// published, and SurgeOrderEventsDelayed stayed silent. The age is
// counted at each scrape from what the last read knew.
func TestRelayAgeGrowsWhileStoreHangs(t *testing.T) {
	s := &hanging{outboxStore: openStore(t)}
	createSale(t, s, "a", 100)
	reserve(t, s, "a", "u", 10, 10)
	np := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
	np.Cut() // the events wait in the outbox
	reg := prometheus.NewRegistry()
	m, err := metrics.NewOutbox(reg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, "nats://"+np.Addr, "SURGE_T_STORE_HANGS", "t.storehangs", m)
	const age = "surge_outbox_oldest_age_seconds"
	waitFor(t, "the figures to show the outbox", func() bool {
		return figure(t, reg, "surge_outbox_lag_events") == 10 && figure(t, reg, age) > 0
	})

	s.stalled.Store(true)
	time.Sleep(100 * time.Millisecond) // the relay's next read hangs
	at := figure(t, reg, age)
	deadline := time.Now().Add(10 * time.Second)
	for figure(t, reg, age) < at+3 {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %.2f s for 10 s while the store's reads hung (%.2f s when they began)",
				age, figure(t, reg, age), at)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := figure(t, reg, "surge_outbox_lag_events"); got != 10 {
		t.Errorf("surge_outbox_lag_events = %v while the reads hung, want the last read's 10", got)
	}
}
