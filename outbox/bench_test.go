package outbox_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/servicetest"
)

// source is a store with an outbox, of either backend.
type source interface {
	surge.Store
	surge.Outbox
}

// backends runs a benchmark against an embedded store (SQLite) and a
// cluster node (Redis and PostgreSQL) holding the outbox lease alone.
func backends(b *testing.B, bench func(b *testing.B, s source)) {
	b.Run("embedded", func(b *testing.B) { bench(b, openStore(b)) })
	b.Run("cluster", func(b *testing.B) { bench(b, openNode(b, servicetest.Namespace(b), "a")) })
}

// BenchmarkRelayDrain measures the relay's sustained publish rate: an
// outbox of b.N reserved events (written first, NATS out of the way) is
// drained into a stream of its own.
func BenchmarkRelayDrain(b *testing.B) { backends(b, benchRelayDrain) }

func benchRelayDrain(b *testing.B, s source) {
	_, stream, subject := servicetest.NATS(b)
	createSale(b, s, "a", int64(b.N)+1)
	reserve(b, s, "a", "u", b.N, 512)
	b.ResetTimer()
	began := time.Now()
	stop := start(b, s, servicetest.NATSURL(), stream, subject, nil)
	drainedWithin(b, s, 10*time.Minute)
	el := time.Since(began)
	stop()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
}

// BenchmarkRelaySpike reserves b.N units as fast as the store takes them
// (16 buyers' goroutines, batches of 64) while the relay publishes, and
// reports the reservation rate, the largest outbox seen during the spike,
// and how long the relay took to drain after the last reservation.
func BenchmarkRelaySpike(b *testing.B) { backends(b, benchRelaySpike) }

func benchRelaySpike(b *testing.B, s source) {
	_, stream, subject := servicetest.NATS(b)
	createSale(b, s, "a", int64(b.N)+1)
	stop := start(b, s, servicetest.NATSURL(), stream, subject, nil)
	defer stop()
	var maxLag atomic.Int64
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n, _, err := s.OutboxBacklog(b.Context()); err == nil && n > maxLag.Load() {
				maxLag.Store(n)
			}
		}
	})
	b.ResetTimer()
	began := time.Now()
	var next atomic.Int64
	var buyers sync.WaitGroup
	for range 16 {
		buyers.Go(func() {
			for {
				first := next.Add(64) - 64
				if first >= int64(b.N) {
					return
				}
				var ps []surge.Purchase
				for i := first; i < min(first+64, int64(b.N)); i++ {
					ps = append(ps, surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
				}
				if _, _, err := s.Reserve(b.Context(), "a", ps, surge.At(t0)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	buyers.Wait()
	spike := time.Since(began)
	drainedWithin(b, s, 10*time.Minute)
	total := time.Since(began)
	close(done)
	sampler.Wait()
	b.ReportMetric(float64(b.N)/spike.Seconds(), "reservations/s")
	b.ReportMetric(float64(maxLag.Load()), "max_lag_events")
	b.ReportMetric((total-spike).Seconds()*1000, "drain_ms")
	b.ReportMetric(float64(b.N)/total.Seconds(), "published/s")
}
