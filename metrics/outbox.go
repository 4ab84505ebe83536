package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outbox holds the relay's figures (package outbox): how far behind the
// order events it publishes are. A nil *Outbox counts nothing.
type Outbox struct {
	lag       prometheus.Gauge     // surge_outbox_lag_events
	oldest    prometheus.GaugeFunc // surge_outbox_oldest_age_seconds, counted at scrape time (age)
	published prometheus.Counter   // surge_outbox_published_total
	failures  prometheus.Counter   // surge_outbox_publish_failures_total

	mu      sync.Mutex
	waiting bool      // the last read found events
	since   time.Time // no event waiting is older; zero before the first figures
	until   time.Time // when the last read stops vouching for an empty outbox
}

// NewOutbox registers the relay's figures on reg.
func NewOutbox(reg prometheus.Registerer) (*Outbox, error) {
	o := &Outbox{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "surge_outbox_lag_events",
			Help: "Order events committed but not yet published to NATS JetStream (the outbox's rows), as the relay's last read of the store found them.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_outbox_published_total",
			Help: "Order events this node published and NATS JetStream acknowledged (repeats it dropped included).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "surge_outbox_publish_failures_total",
			Help: "Rounds of the relay that failed (NATS down, an ack missing, an event JetStream refused, the store unavailable); the events are retried.",
		}),
	}
	o.oldest = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "surge_outbox_oldest_age_seconds",
		Help: "Age of the oldest order event not yet published; 0 when none waits. While the relay cannot read the store (it fails or hangs), the most it can be: counted on from the last read.",
	}, o.age)
	for _, c := range []prometheus.Collector{o.lag, o.oldest, o.published, o.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Backlog sets the backlog as a read of the store found it: n events
// waiting, none older than since (the oldest's time, or the read's when
// none waited). The age is counted at each scrape, not set here: from
// since while events wait, and from since whatever the read found once
// until has passed without a newer one (zero until: at once). A relay
// held in a read that hangs calls nothing, and a figure set only here
// stood still through the very outage it should show.
func (o *Outbox) Backlog(n int64, since, until time.Time) {
	if o == nil {
		return
	}
	o.lag.Set(float64(n))
	o.mu.Lock()
	o.waiting, o.since, o.until = n > 0, since, until
	o.mu.Unlock()
}

// age is surge_outbox_oldest_age_seconds at a scrape.
func (o *Outbox) age() float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.since.IsZero() || !o.waiting && now.Before(o.until) {
		return 0
	}
	return max(now.Sub(o.since).Seconds(), 0)
}

// Published counts n events acknowledged.
func (o *Outbox) Published(n int) {
	if o != nil {
		o.published.Add(float64(n))
	}
}

// Failed counts one failed round.
func (o *Outbox) Failed() {
	if o != nil {
		o.failures.Inc()
	}
}
