package metrics

import "github.com/prometheus/client_golang/prometheus"

// Outbox holds the relay's figures (package outbox): how far behind the
// order events it publishes are. A nil *Outbox counts nothing.
type Outbox struct {
	lag       prometheus.Gauge   // surge_outbox_lag_events
	oldest    prometheus.Gauge   // surge_outbox_oldest_age_seconds
	published prometheus.Counter // surge_outbox_published_total
	failures  prometheus.Counter // surge_outbox_publish_failures_total
}

// NewOutbox registers the relay's figures on reg.
func NewOutbox(reg prometheus.Registerer) (*Outbox, error) {
	o := &Outbox{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "surge_outbox_lag_events",
			Help: "Order events committed but not yet published to NATS JetStream (the outbox's rows).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "surge_outbox_oldest_age_seconds",
			Help: "Age of the oldest order event not yet published; 0 when none waits. While the relay cannot read the store, the most it can be: counted on from the last read.",
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
	for _, c := range []prometheus.Collector{o.lag, o.oldest, o.published, o.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Lag sets the backlog: n events waiting, the oldest ageSeconds old.
func (o *Outbox) Lag(n int64, ageSeconds float64) {
	if o == nil {
		return
	}
	o.lag.Set(float64(n))
	o.oldest.Set(ageSeconds)
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
