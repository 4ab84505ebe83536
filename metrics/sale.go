package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes are the values of surge_purchases_total's outcome label: a
// purchase's answer code, with a 201 told apart as a new reservation or a
// replay. Every one is exported from the sale's creation on, at 0 until
// it happens, so that rate() over a fresh sale has a series to work on.
// A code not listed (a bug) counts as "other" rather than as a new series.
var Outcomes = [...]string{
	"reserved", "replayed",
	"sold_out", "limit_reached", "not_started", "ended", "idempotency_mismatch",
	"rate_limited", "overloaded", "not_admitted", "unavailable",
	"invalid_request", "too_large", "unauthenticated", "sale_not_found",
	"internal", "other",
}

// outcome maps an answer to its index in Outcomes.
func outcome(code string, replay bool) int {
	switch code {
	case "reserved":
		if replay {
			return 1
		}
		return 0
	case "sold_out":
		return 2
	case "limit_reached":
		return 3
	case "not_started":
		return 4
	case "ended":
		return 5
	case "idempotency_mismatch":
		return 6
	case "rate_limited":
		return 7
	case "overloaded":
		return 8
	case "not_admitted":
		return 9
	case "unavailable":
		return 10
	case "invalid_request":
		return 11
	case "too_large":
		return 12
	case "unauthenticated":
		return 13
	case "sale_not_found":
		return 14
	case "internal":
		return 15
	}
	return len(Outcomes) - 1
}

// Order transitions, the values of surge_order_transitions_total's to
// label.
const (
	ToPaid      = "paid"
	ToCancelled = "cancelled"
	ToExpired   = "expired"
)

// Sale holds one sale's series, resolved once so that counting costs an
// atomic add and no label lookup. A nil *Sale counts nothing.
type Sale struct {
	outcomes  [len(Outcomes)]prometheus.Counter
	duration  prometheus.Observer
	paid      prometheus.Counter
	cancelled prometheus.Counter
	expired   prometheus.Counter
}

// Sale returns sale id's series, made on the first call. The engine calls
// it when it creates or loads a sale and keeps the result; only sales
// this node serves get series of their own (see Unknown).
func (m *Metrics) Sale(id string) *Sale {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sales[id]; ok {
		return s
	}
	s := m.newSale(id)
	m.sales[id] = s
	return s
}

// Unknown is the series of purchases of sales this node does not serve
// (an unknown or archived id): sale="".
func (m *Metrics) Unknown() *Sale {
	if m == nil {
		return nil
	}
	return m.unknown
}

func (m *Metrics) newSale(id string) *Sale {
	s := &Sale{
		duration:  m.duration.WithLabelValues(id),
		paid:      m.transitions.WithLabelValues(id, ToPaid),
		cancelled: m.transitions.WithLabelValues(id, ToCancelled),
		expired:   m.transitions.WithLabelValues(id, ToExpired),
	}
	for i, o := range Outcomes {
		s.outcomes[i] = m.purchases.WithLabelValues(id, o)
	}
	return s
}

// Answered counts one purchase answer: its code (the error code, or
// "reserved" for a 201, replay telling a replayed 201 apart) and the time
// from reading the request to writing the answer.
func (s *Sale) Answered(code string, replay bool, took time.Duration) {
	if s == nil {
		return
	}
	s.outcomes[outcome(code, replay)].Inc()
	s.duration.Observe(took.Seconds())
}

// Transition counts an order leaving reserved: to is ToPaid, ToCancelled
// or ToExpired.
func (s *Sale) Transition(to string, n int) {
	if s == nil {
		return
	}
	var c prometheus.Counter
	switch to {
	case ToPaid:
		c = s.paid
	case ToCancelled:
		c = s.cancelled
	case ToExpired:
		c = s.expired
	default:
		return
	}
	c.Add(float64(n))
}
