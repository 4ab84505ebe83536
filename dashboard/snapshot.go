package dashboard

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The contract metrics the dashboard reads (docs/observability.md).
const (
	mPurchases      = "surge_purchases_total"
	mDuration       = "surge_purchase_duration_seconds"
	mStock          = "surge_sale_stock_units"
	mRemaining      = "surge_sale_remaining_units"
	mStatus         = "surge_sale_status"
	mStale          = "surge_sale_stale"
	mBatch          = "surge_batch_size"
	mQueueDepth     = "surge_queue_depth"
	mRoomLength     = "surge_waiting_room_length"
	mRoomAdmitted   = "surge_waiting_room_admitted_total"
	mBreaker        = "surge_breaker_state"
	mClusterLeader  = "surge_cluster_leader"
	defaultWindow   = 5 * time.Second
	defaultMaxSales = 48
)

// Snapshot is one event of the feed: what the page shows, computed from
// the registry. Unknown figures (a metric this node does not export, a
// rate before the second sample) are null.
type Snapshot struct {
	Time time.Time `json:"time"`
	// WindowSeconds is the span that latency percentiles and batch sizes
	// cover; rates cover the last step (about a second).
	WindowSeconds float64 `json:"window_seconds"`
	Sales         []Sale  `json:"sales"`
	// HiddenSales counts the sales left out to keep the event bounded
	// (idle ones first, ended ones before sold-out ones before the rest):
	// those of the other pages.
	HiddenSales int `json:"hidden_sales,omitempty"`
	// HiddenInPlay counts those of them not idle: busy in the window, or
	// on sale, paused or upcoming. Past the bound they are left out too,
	// and the page must not call them idle.
	HiddenInPlay int `json:"hidden_in_play,omitempty"`
	// Page is the page of sales this event shows, of Pages: the sales
	// ranked as HiddenSales says, maxSales a page, so that every sale
	// can be reached, the ones that matter most on the first page.
	Page  int   `json:"page"`
	Pages int   `json:"pages"`
	Batch Batch `json:"batch"`
	// Breakers and Leader are cluster mode's; absent in embedded mode.
	Breakers []Breaker `json:"breakers,omitempty"`
	Leader   *bool     `json:"leader,omitempty"`
}

// Sale is one sale's figures.
type Sale struct {
	ID        string   `json:"id"`
	Stock     *float64 `json:"stock"`
	Remaining *float64 `json:"remaining"`
	// Status is the sale's status as the API reports it (upcoming, live,
	// paused, sold_out, ended); null when the registry does not say.
	Status *string `json:"status"`
	// Stale: remaining and status are the last known, the node unable to
	// refresh them (cluster mode), as GET /v1/sales/{id} says.
	Stale bool `json:"stale,omitempty"`
	// Outcomes: reserved first, then replayed, then the rest by total.
	Outcomes           []Outcome `json:"outcomes"`
	PurchasesPerSecond *float64  `json:"purchases_per_second"`
	LatencyP50         *float64  `json:"latency_p50_seconds"`
	LatencyP99         *float64  `json:"latency_p99_seconds"`
	QueueDepth         *float64  `json:"queue_depth"`
	WaitingRoomLength  *float64  `json:"waiting_room_length"`
	AdmittedPerSecond  *float64  `json:"admitted_per_second"`
	AdmittedTotal      *float64  `json:"admitted_total"`
}

// Outcome is one purchase outcome of a sale.
type Outcome struct {
	Name      string   `json:"name"`
	Total     float64  `json:"total"`
	PerSecond *float64 `json:"per_second"`
}

// Batch is the store calls of the window: mean and p99 purchases per
// call, and calls per second.
type Batch struct {
	Mean      *float64 `json:"mean"`
	P99       *float64 `json:"p99"`
	PerSecond *float64 `json:"per_second"`
}

// Breaker is one dependency's circuit breaker.
type Breaker struct {
	Dependency string `json:"dependency"`
	State      string `json:"state"` // closed, half-open, open
}

// hist is a classic histogram: cumulative counts at each upper bound, the
// +Inf bucket being count.
type hist struct {
	bounds []float64
	cum    []float64
	count  float64
	sum    float64
}

// saleSample is one sale's metrics in one gather.
type saleSample struct {
	purchases  map[string]float64 // by outcome
	latency    hist
	stock      *float64
	remaining  *float64
	status     *string
	stale      bool
	queueDepth *float64
	roomLength *float64
	admitted   *float64
}

// sample is one gather of the contract metrics.
type sample struct {
	at       time.Time
	sales    map[string]*saleSample
	batch    hist
	breakers map[string]float64
	leader   *float64
}

// read extracts the contract metrics from the families of one gather;
// everything else in the registry is ignored.
func read(at time.Time, g prometheus.Gatherer) (sample, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return sample{}, fmt.Errorf("gather metrics: %w", err)
	}
	// A partial gather (one failing collector) still holds the rest.
	s := sample{at: at, sales: map[string]*saleSample{}, breakers: map[string]float64{}}
	sale := func(id string) *saleSample {
		ss := s.sales[id]
		if ss == nil {
			ss = &saleSample{purchases: map[string]float64{}}
			s.sales[id] = ss
		}
		return ss
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if id, ok := labels["sale"]; ok && id == "" {
				// Purchases of unknown or archived ids: no sale to show.
				continue
			}
			v := value(m)
			switch name {
			case mPurchases:
				sale(labels["sale"]).purchases[labels["outcome"]] += v
			case mDuration:
				sale(labels["sale"]).latency.add(m.GetHistogram())
			case mStock:
				sale(labels["sale"]).stock = &v
			case mRemaining:
				sale(labels["sale"]).remaining = &v
			case mStatus:
				if v == 1 {
					st := labels["status"]
					sale(labels["sale"]).status = &st
				}
			case mStale:
				sale(labels["sale"]).stale = v == 1
			case mQueueDepth:
				sale(labels["sale"]).queueDepth = &v
			case mRoomLength:
				sale(labels["sale"]).roomLength = &v
			case mRoomAdmitted:
				sale(labels["sale"]).admitted = &v
			case mBatch:
				s.batch.add(m.GetHistogram())
			case mBreaker:
				s.breakers[labels["dependency"]] = v
			case mClusterLeader:
				s.leader = &v
			}
		}
	}
	return s, nil
}

// value is the value of whichever of a metric's kinds is set.
func value(m *dto.Metric) float64 {
	// client_model's getters are nil-safe (0), and one kind is set.
	return m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
}

// add merges one histogram series into h (series of other labels sum).
func (h *hist) add(p *dto.Histogram) {
	bs := p.GetBucket()
	if h.bounds == nil {
		for _, b := range bs {
			h.bounds = append(h.bounds, b.GetUpperBound())
		}
		h.cum = make([]float64, len(h.bounds))
	}
	if len(bs) == len(h.bounds) {
		for i, b := range bs {
			h.cum[i] += float64(b.GetCumulativeCount())
		}
	}
	h.count += float64(p.GetSampleCount())
	h.sum += p.GetSampleSum()
}

// minus is h - base: what was observed between two gathers. A counter
// that went down was reset (a restart); then h itself is the delta.
func (h hist) minus(base hist) hist {
	if h.count < base.count || len(base.cum) != len(h.cum) {
		return h
	}
	d := hist{bounds: h.bounds, cum: make([]float64, len(h.cum)), count: h.count - base.count, sum: h.sum - base.sum}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - base.cum[i]
	}
	return d
}

// quantile is Prometheus's histogram_quantile: linear interpolation
// inside the bucket the rank falls in; the top finite bound when it falls
// in +Inf. nil without observations.
func (h hist) quantile(q float64) *float64 {
	if h.count <= 0 || len(h.bounds) == 0 {
		return nil
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.bounds {
		if h.cum[i] >= rank {
			in := h.cum[i] - below
			if in <= 0 {
				return &upper
			}
			if i == 0 && upper <= 0 {
				lower = upper
			}
			v := lower + (upper-lower)*(rank-below)/in
			return &v
		}
		lower, below = upper, h.cum[i]
	}
	top := h.bounds[len(h.bounds)-1]
	return &top
}

// delta is cur - prev for a counter, cur after a reset.
func delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func ptr(v float64) *float64 { return &v }

// feed turns gathers into snapshots. One feed serves every stream: a
// gather is made at most once per half interval whoever asks, and rates
// are deltas between consecutive gathers, so no second set of counters is
// kept anywhere.
type feed struct {
	g        prometheus.Gatherer
	window   time.Duration
	interval time.Duration
	maxSales int

	mu      sync.Mutex
	history []sample // oldest first, spanning about window
	// last is the snapshot of the last gather, with every sale, ranked
	// (rank); inPlay of them, the first, are active or still in play.
	last   Snapshot
	inPlay int
}

// snapshot returns the first page of the snapshot of now.
func (f *feed) snapshot(now time.Time) (Snapshot, error) { return f.snapshotPage(now, 1) }

// snapshotPage returns page (from 1; past the last, the last) of the
// snapshot of now, gathering unless the last one is fresh enough.
func (f *feed) snapshotPage(now time.Time, page int) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.history); n > 0 && now.Sub(f.history[n-1].at) < f.interval/2 {
		return f.page(page), nil
	}
	cur, err := read(now, f.g)
	if err != nil {
		return Snapshot{}, err
	}
	// A pause (nobody watching) leaves samples too old to take rates from.
	if n := len(f.history); n > 0 && now.Sub(f.history[n-1].at) > 3*f.interval {
		f.history = f.history[:0]
	}
	f.history = append(f.history, cur)
	// Keep the newest sample at least window old as the base of the
	// window's deltas.
	for len(f.history) > 2 && now.Sub(f.history[1].at) >= f.window {
		f.history = f.history[1:]
	}
	f.last, f.inPlay = f.compute()
	return f.page(page), nil
}

// page is page n of the last snapshot: the sales ranked n-th maxSales by
// maxSales, in id order so that cards do not jump around the page. A
// page past the last is the last (sales archived while it was watched).
func (f *feed) page(n int) Snapshot {
	s := f.last
	all, size := s.Sales, max(f.maxSales, 1)
	s.Pages = max((len(all)+size-1)/size, 1)
	s.Page = min(max(n, 1), s.Pages)
	lo, hi := min((s.Page-1)*size, len(all)), min(s.Page*size, len(all))
	s.Sales = slices.Clone(all[lo:hi])
	slices.SortFunc(s.Sales, func(a, b Sale) int { return cmp.Compare(a.ID, b.ID) })
	if s.Sales == nil {
		s.Sales = []Sale{}
	}
	// The sales in play are ranked first: those of them before and
	// after this page are the ones it leaves out.
	s.HiddenSales = len(all) - len(s.Sales)
	s.HiddenInPlay = f.inPlay - max(min(hi, f.inPlay)-lo, 0)
	return s
}

// compute builds the snapshot of the newest sample against the previous
// one (rates) and the oldest one kept (window figures), with every sale,
// ranked (rank), and how many of them, the first, are in play.
func (f *feed) compute() (Snapshot, int) {
	n := len(f.history)
	cur := f.history[n-1]
	var prev, base *sample
	if n > 1 {
		prev, base = &f.history[n-2], &f.history[0]
	}
	snap := Snapshot{Time: cur.at.UTC(), WindowSeconds: f.window.Seconds()}
	var step, span float64
	if prev != nil {
		step, span = cur.at.Sub(prev.at).Seconds(), cur.at.Sub(base.at).Seconds()
		snap.WindowSeconds = span
	}
	// rate is nil without a previous value: admissions are read at scrape
	// time from the waiting room (in cluster mode, Redis), and a scrape
	// that could not count them leaves them out; when they come back, or
	// a sale this node just heard of brings them, their total is not what
	// happened in the last step.
	rate := func(c float64, p *float64) *float64 {
		if prev == nil || p == nil || step <= 0 {
			return nil
		}
		return ptr(delta(c, *p) / step)
	}
	active := map[string]bool{}
	for id, s := range cur.sales {
		out := Sale{ID: id, Stock: s.stock, Remaining: s.remaining, Status: s.status, Stale: s.stale, QueueDepth: s.queueDepth,
			WaitingRoomLength: s.roomLength, AdmittedTotal: s.admitted, Outcomes: []Outcome{}}
		var ps, bs *saleSample
		if prev != nil {
			ps, bs = prev.sales[id], base.sales[id]
		}
		if ps == nil {
			ps = &saleSample{}
		}
		if bs == nil {
			bs = &saleSample{}
		}
		var all float64
		for name, total := range s.purchases {
			// Every outcome is exported at 0 from the sale's creation: one
			// the previous gather lacked counts from 0.
			o := Outcome{Name: name, Total: total, PerSecond: rate(total, ptr(ps.purchases[name]))}
			if o.PerSecond != nil {
				all += *o.PerSecond
			}
			out.Outcomes = append(out.Outcomes, o)
		}
		if prev != nil {
			out.PurchasesPerSecond = ptr(all)
		}
		slices.SortFunc(out.Outcomes, func(a, b Outcome) int {
			if c := cmp.Compare(outcomeRank(a.Name), outcomeRank(b.Name)); c != 0 {
				return c
			}
			if c := cmp.Compare(b.Total, a.Total); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		if s.admitted != nil {
			out.AdmittedPerSecond = rate(*s.admitted, ps.admitted)
		}
		if prev != nil {
			lat := s.latency.minus(bs.latency)
			out.LatencyP50, out.LatencyP99 = lat.quantile(0.5), lat.quantile(0.99)
			active[id] = lat.count > 0 || all > 0
		}
		snap.Sales = append(snap.Sales, out)
	}
	inPlay := rank(snap.Sales, active)
	if prev != nil {
		b := cur.batch.minus(base.batch)
		if b.count > 0 {
			snap.Batch.Mean = ptr(b.sum / b.count)
			snap.Batch.P99 = b.quantile(0.99)
		}
		if span > 0 {
			snap.Batch.PerSecond = ptr(b.count / span)
		}
	}
	for dep, v := range cur.breakers {
		snap.Breakers = append(snap.Breakers, Breaker{Dependency: dep, State: breakerState(v)})
	}
	slices.SortFunc(snap.Breakers, func(a, b Breaker) int { return cmp.Compare(a.Dependency, b.Dependency) })
	if cur.leader != nil {
		leads := *cur.leader == 1
		snap.Leader = &leads
	}
	return snap, inPlay
}

// rank orders sales as the pages show them, maxSales a page: the active
// ones first, then those still in play (on sale, paused, upcoming), then
// sold-out ones (a hold that lapses gives units back), ended ones last,
// each in id order. Units left alone do not rank a sale: an ended sale
// that did not sell out stays until it is archived, and a shop's old ones
// would push the drop about to start off the first page. It returns how
// many are active or still in play (the first ones).
func rank(sales []Sale, active map[string]bool) int {
	live := func(s Sale) int {
		switch {
		case active[s.ID]:
			return 0
		case s.Status != nil && *s.Status == "ended":
			return 3
		case s.Status != nil && *s.Status == "sold_out":
			return 2
		case s.Remaining != nil && *s.Remaining > 0:
			return 1
		}
		return 2
	}
	slices.SortFunc(sales, func(a, b Sale) int {
		if c := cmp.Compare(live(a), live(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	inPlay := 0
	for _, s := range sales {
		if live(s) <= 1 {
			inPlay++
		}
	}
	return inPlay
}

func outcomeRank(name string) int {
	switch name {
	case "reserved":
		return 0
	case "replayed":
		return 1
	}
	return 2
}

// breakerState names surge_breaker_state's values.
func breakerState(v float64) string {
	switch math.Round(v) {
	case 0:
		return "closed"
	case 1:
		return "half-open"
	case 2:
		return "open"
	}
	return fmt.Sprint(v)
}
