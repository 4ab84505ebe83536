package metrics

import (
	"math/rand/v2"
	"sync/atomic"
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
	"internal", "paused", "other",
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
	case "paused":
		return 16
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

// shards is how many copies of its purchase series a sale keeps. Every
// core of a node answering a hot sale's buyers would otherwise add to the
// same few cache lines: client_golang's counter and histogram cost about
// 200 ns an answer on two cores (BenchmarkAnswered), 1-2 % of a sold-out
// answer. An answer picks a shard at random and the collector sums them
// at scrape time.
const shards = 8

// shard is one copy of a sale's purchase series, padded so that
// neighbouring shards share no cache line.
type shard struct {
	outcomes [len(Outcomes)]atomic.Uint64
	// buckets counts answers by latency bucket, not cumulated: buckets[i]
	// those at most latencyBuckets[i] and above the bucket before; the
	// last, those above every bound.
	buckets  [len(latencyBuckets) + 1]atomic.Uint64
	sumNanos atomic.Uint64
	_        [64]byte
}

// Sale holds one sale's series: its purchase answers in shards of plain
// atomics (no label lookup, no shared cache line), its order transitions
// in counters resolved once. A nil *Sale counts nothing.
type Sale struct {
	id        string
	shards    [shards]shard
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

// Forget deletes sale id's series, when the sale is archived: a shop
// that runs sale after sale would otherwise export every sale it ever
// ran, each scrape larger than the last. A purchase or transition still
// in flight adds to the forgotten series, which no scrape reads; an
// archived sale's later purchases count under Unknown.
func (m *Metrics) Forget(id string) {
	if m == nil || id == "" {
		return
	}
	m.mu.Lock()
	delete(m.sales, id)
	m.mu.Unlock()
	m.transitions.DeletePartialMatch(prometheus.Labels{"sale": id})
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
	return &Sale{
		id:        id,
		paid:      m.transitions.WithLabelValues(id, ToPaid),
		cancelled: m.transitions.WithLabelValues(id, ToCancelled),
		expired:   m.transitions.WithLabelValues(id, ToExpired),
	}
}

// Answered counts one purchase answer: its code (the error code, or
// "reserved" for a 201, replay telling a replayed 201 apart) and the time
// from reading the request to writing the answer.
func (s *Sale) Answered(code string, replay bool, took time.Duration) {
	if s == nil {
		return
	}
	sh := &s.shards[rand.Uint32()%shards] // per-thread generator: no lock, no shared state
	sh.outcomes[outcome(code, replay)].Add(1)
	ns := max(took.Nanoseconds(), 0)
	b := 0
	for b < len(latencyNanos) && ns > latencyNanos[b] {
		b++
	}
	sh.buckets[b].Add(1)
	sh.sumNanos.Add(uint64(ns))
}

// latencyNanos are latencyBuckets in nanoseconds, for Answered.
var latencyNanos = func() (ns [len(latencyBuckets)]int64) {
	for i, b := range latencyBuckets {
		ns[i] = int64(b * 1e9)
	}
	return ns
}()

var (
	purchasesDesc = prometheus.NewDesc("surge_purchases_total",
		"Purchase answers by sale and outcome: reserved (a new 201), replayed (a 201 replay), or the error code answered.",
		[]string{"sale", "outcome"}, nil)
	durationDesc = prometheus.NewDesc("surge_purchase_duration_seconds",
		"Time from reading a purchase request to writing its answer.", []string{"sale"}, nil)
)

// purchaseCollector exports every sale's purchase series, summing its
// shards.
type purchaseCollector struct{ m *Metrics }

func (c purchaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- purchasesDesc
	ch <- durationDesc
}

func (c purchaseCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	sales := make([]*Sale, 0, len(c.m.sales)+1)
	for _, s := range c.m.sales {
		sales = append(sales, s)
	}
	c.m.mu.Unlock()
	for _, s := range append(sales, c.m.unknown) {
		var outcomes [len(Outcomes)]uint64
		var buckets [len(latencyBuckets) + 1]uint64
		var sumNanos uint64
		for i := range s.shards {
			sh := &s.shards[i]
			for o := range outcomes {
				outcomes[o] += sh.outcomes[o].Load()
			}
			for b := range buckets {
				buckets[b] += sh.buckets[b].Load()
			}
			sumNanos += sh.sumNanos.Load()
		}
		for o, name := range Outcomes {
			ch <- prometheus.MustNewConstMetric(purchasesDesc, prometheus.CounterValue, float64(outcomes[o]), s.id, name)
		}
		cumulative := make(map[float64]uint64, len(latencyBuckets))
		var count uint64
		for b, bound := range latencyBuckets {
			count += buckets[b]
			cumulative[bound] = count
		}
		count += buckets[len(latencyBuckets)]
		ch <- prometheus.MustNewConstHistogram(durationDesc, count, float64(sumNanos)/1e9, cumulative, s.id)
	}
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
