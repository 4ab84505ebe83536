package outbox_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/outbox"
	"github.com/surgehq/surge/servicetest"
)

// gated holds every removal of published events until open is closed.
type gated struct {
	surge.Outbox
	open chan struct{}
}

func (g *gated) EventsPublished(ctx context.Context, evs []surge.OrderEvent) error {
	<-g.open
	return g.Outbox.EventsPublished(ctx, evs)
}

// TestRelayOutageDuringDrainLogged: docs/events.md says the relay "logs
// once when publishing stops and once when it resumes". After an outage
// the outbox drains for a while; a second outage during that drain must
// be logged too, so publishing resuming is logged when events land again,
// not only once the outbox is empty.
func TestRelayOutageDuringDrainLogged(t *testing.T) {
	s := openStore(t)
	nc, stream, subject := servicetest.NATS(t)
	proxy := servicetest.NewProxy(t, strings.TrimPrefix(servicetest.NATSURL(), "nats://"))
	createSale(t, s, "a", 1000)
	g := &gated{Outbox: s, open: make(chan struct{})}
	logs := &servicetest.Log{}
	conn, err := outbox.Connect("nats://"+proxy.Addr, "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := outbox.New(conn, g, outbox.Config{Stream: stream, Subject: subject, Batch: 10, Retry: 50 * time.Millisecond,
		AckTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.RunUntil(ctx, context.Background()) })
	release := sync.OnceFunc(func() { close(g.open) })
	t.Cleanup(func() { release(); cancel(); wg.Wait(); conn.Close() })

	const stopped, resumed = "order events not published", "order events published again"
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay to create its stream", func() bool { _, err := js.Stream(t.Context(), stream); return err == nil })
	proxy.Cut()
	orders := reserve(t, s, "a", "u", 200, 50)
	waitFor(t, "the first outage to be logged", func() bool { return strings.Count(logs.String(), stopped) == 1 })
	proxy.Restore()
	// The drain starts, and stalls on removals held by the gate: events
	// landed, the outbox is far from empty.
	within(t, logs, resumed, 1)
	proxy.Cut()
	waitFor(t, "the relay to see the second outage", func() bool { return !conn.IsConnected() })
	release()
	within(t, logs, stopped, 2)
	proxy.Restore()
	drainedWithin(t, s, 20*time.Second)
	within(t, logs, resumed, 2)
	wantStream(t, servicetest.ReadStream(t, nc, stream, subject+".>"), subject, orders)
}

// within waits up to 10 s for msg to have been logged n times.
func within(t *testing.T, logs *servicetest.Log, msg string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), msg) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q logged %d times within 10 s, want %d, the outbox still draining after an outage:\n%s", msg, strings.Count(logs.String(), msg), n, logs)
		}
	}
}
