package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/outbox"
)

// startRelay publishes the store's order events to NATS JetStream at url
// (docs/events.md) until the returned stop is called. NATS being down
// does not stop the start: the relay retries and the outbox waits.
// leaseTTL is cluster mode's lease: a read older than a quarter of it is
// read again before its events go out (outbox.Config.Fresh).
func startRelay(url, nodeName string, leaseTTL time.Duration, store surge.Store, reg prometheus.Registerer, log *slog.Logger) (stop func(within context.Context), err error) {
	src, ok := store.(surge.Outbox)
	if !ok {
		return nil, fmt.Errorf("serve: --nats-url: the %T store has no outbox", store)
	}
	m, err := metrics.NewOutbox(reg)
	if err != nil {
		return nil, err
	}
	nc, err := outbox.Connect(url, nodeName)
	if err != nil {
		return nil, errUsage{"serve: --nats-url: " + err.Error()}
	}
	r, err := outbox.New(nc, src, outbox.Config{Logger: log, Metrics: m, Fresh: min(time.Second, leaseTTL/4)})
	if err != nil {
		nc.Close()
		return nil, err
	}
	// The first figures before the listener serves (startRelay runs
	// before it): a store that hangs delays the start by no more than
	// this, and its age then counts on from the start.
	first, cancelFirst := context.WithTimeout(context.Background(), 2*time.Second)
	r.ReadFigures(first)
	cancelFirst()
	ctx, cancel := context.WithCancel(context.Background())
	giveUp, giveUpNow := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.RunUntil(ctx, giveUp) })
	log.Info("publishing order events to NATS JetStream", "stream", outbox.DefaultStream)
	var once sync.Once
	return func(within context.Context) {
		once.Do(func() {
			cancel()
			// The relay awaits the batch in flight, up to its ack timeout
			// (5 s) while NATS stalls: no longer than the shutdown's
			// deadline. What it gives up on stays in the outbox.
			stop := context.AfterFunc(within, giveUpNow)
			wg.Wait()
			stop()
			giveUpNow()
			nc.Close()
		})
	}, nil
}
