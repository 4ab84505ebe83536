package bench

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: latencies in microseconds from 1 µs to 60 s, 3
// significant digits. Longer latencies are recorded as 60 s.
const (
	minLatencyUS  = 1
	maxLatencyUS  = 60_000_000
	latencyDigits = 3
)

// Outcome codes the client assigns itself; the others come from the
// server's error bodies.
const (
	codeReserved  = "reserved"
	codeReplayed  = "replayed" // a 201 with Idempotent-Replayed: true
	codeSoldOut   = "sold_out"
	codeTransport = "transport_error"
	codeHTTPError = "http_error" // an error answer without a JSON error body
	codeBadBody   = "bad_body"   // a 201 whose body holds no order
)

// secondGrace is how long a second's histogram stays open after the
// second ends, for answers timed just before it ended that reach the lock
// just after. Then the second is summarised and its histogram reused, so a
// run of any length keeps only a few histograms (each ~140 KB).
const secondGrace = 2

// attempt is one HTTP request as the recorder sees it.
type attempt struct {
	due    time.Time // intended send time (open loop)
	sent   time.Time // actual send time
	at     time.Time // answer (or failure) time
	status int       // 0: no answer
	code   string
	order  string // a 201's order id
	// retryAfter: the answer carried a valid Retry-After header.
	retryAfter bool
	// queued: when the send was due, every connection was busy, so it
	// waited for one (open loop, the first send of a buyer only).
	queued bool
}

// When a send counts as late: its lateness shifted the load the server was
// offered. It waited more than lateAfter for a free connection (every one
// was busy when it was due), or it left more than behindAfter after its
// intended time for any reason (the bench itself fell behind its schedule:
// too little CPU for it). A send a little late with a connection free is
// the scheduler's jitter, not a shortfall: on a busy 2-core machine Go's
// timers and goroutine wake-ups slip by 1-5 ms, so `surge demo`, never short
// of connections, found a tenth of its sends more than 1 ms late
// (docs/benchmarks.md, "surge demo warned that its shape was not
// delivered").
const (
	lateAfter   = time.Millisecond
	behindAfter = 20 * time.Millisecond
)

// late reports whether a counts as a late send (see lateAfter).
func (a attempt) late() bool {
	lag := a.sent.Sub(a.due)
	return lag > behindAfter || (a.queued && lag > lateAfter)
}

// recorder collects latencies and counts. One mutex guards it: the
// critical section is two histogram increments and a few counters (about
// 0.1 µs, see BenchmarkRecorder), while each request costs the client
// about 20 µs of CPU (mostly the read and write system calls), so at the
// rates one client can drive the lock is held well under 1 % of the time. Per-worker recorders would need a
// per-second histogram per worker (hundreds of MB for long runs with many
// connections) for no measurable gain.
type recorder struct {
	start time.Time
	open  bool // open loop: latency from the intended time
	late  atomic.Int64
	sent  atomic.Int64
	// begun counts purchases sent for the first time (one per buyer,
	// replays and resends not included).
	begun atomic.Int64

	mu        sync.Mutex
	all       *hdrhistogram.Histogram
	admitted  *hdrhistogram.Histogram // answers other than 429 and 503
	secs      []SecondStats
	live      []liveSecond // seconds whose histogram is still filling
	closed    int          // seconds below this one are summarised
	spare     []*hdrhistogram.Histogram
	status    map[int]int64
	codes     map[string]int64
	completed int64
	errors    int64
	shed      int64         // 429 and 503 answers
	bad5xx    int64         // 5xx answers other than a 503 with Retry-After
	soldOutAt time.Duration // first sold_out answer since start; 0: none yet
}

type liveSecond struct {
	sec  int
	hist *hdrhistogram.Histogram
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minLatencyUS, maxLatencyUS, latencyDigits)
}

func newRecorder(start time.Time, open bool) *recorder {
	return &recorder{
		start:    start,
		open:     open,
		all:      newHistogram(),
		admitted: newHistogram(),
		status:   make(map[int]int64),
		codes:    make(map[string]int64),
	}
}

func (r *recorder) second(t time.Time) int {
	if d := t.Sub(r.start); d > 0 {
		return int(d / time.Second)
	}
	return 0
}

// bucket returns the stats of second s, growing the slice as needed.
// Callers hold mu.
func (r *recorder) bucket(s int) *SecondStats {
	for len(r.secs) <= s {
		r.secs = append(r.secs, SecondStats{Second: len(r.secs)})
	}
	return &r.secs[s]
}

// offer counts a request due at t (open loop: its intended time; closed
// loop: when it is sent).
func (r *recorder) offer(t time.Time) {
	s := r.second(t)
	r.mu.Lock()
	r.bucket(s).Offered++
	r.mu.Unlock()
}

// sending counts a request going out; it is separate from record so that
// progress shows requests in flight as sent.
func (r *recorder) sending() { r.sent.Add(1) }

// latency is what the user saw: in open loop from the intended send time,
// so time spent waiting for a free connection counts (coordinated-omission
// correction); in closed loop from the actual send.
func (r *recorder) latency(a attempt) time.Duration {
	if r.open {
		return a.at.Sub(a.due)
	}
	return a.at.Sub(a.sent)
}

// record counts an answered or failed request, and its latency either way.
func (r *recorder) record(a attempt) {
	if r.open && a.late() {
		r.late.Add(1)
	}
	us := min(max(r.latency(a).Microseconds(), minLatencyUS), maxLatencyUS)
	s := r.second(a.at)

	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucket(s)
	if a.status == 0 {
		// No answer: a failure, and a latency all the same. The buyer
		// waited that long for nothing (a timeout: the whole of it);
		// leaving it out would hide a server stalled past the timeout
		// from every percentile.
		r.errors++
		r.codes[codeTransport]++
		b.Failed++
	} else {
		r.completed++
		r.status[a.status]++
		r.codes[a.code]++
		if a.code == codeSoldOut {
			// Answers reach the lock out of order: keep the earliest.
			if d := max(a.at.Sub(r.start), 1); r.soldOutAt == 0 || d < r.soldOutAt {
				r.soldOutAt = d
			}
		}
		b.Completed++
		switch {
		case a.status == http.StatusCreated:
			b.Reserved++
		case a.status == http.StatusConflict:
			b.Rejected++
		case a.status >= 400:
			b.Failed++
		}
		if a.status >= 500 && !(a.status == http.StatusServiceUnavailable && a.retryAfter) {
			r.bad5xx++
		}
	}
	_ = r.all.RecordValue(us) // us is within range
	if shed(a.status) {
		r.shed++
	} else {
		// Not turned away by the server's shedding: admitted, or never
		// answered.
		_ = r.admitted.RecordValue(us)
	}
	if s < r.closed {
		// Reached the lock after its second was summarised: rare (a stall
		// of seconds); it still counts, and in the maximum.
		b.Max = max(b.Max, float64(us)/1000)
		return
	}
	_ = r.liveHist(s).RecordValue(us)
	r.closeBefore(s - secondGrace)
}

// liveHist returns the histogram of second s, opening it if needed.
// Callers hold mu.
func (r *recorder) liveHist(s int) *hdrhistogram.Histogram {
	for _, l := range r.live {
		if l.sec == s {
			return l.hist
		}
	}
	var h *hdrhistogram.Histogram
	if n := len(r.spare); n > 0 {
		h, r.spare = r.spare[n-1], r.spare[:n-1]
	} else {
		h = newHistogram()
	}
	r.live = append(r.live, liveSecond{sec: s, hist: h})
	return h
}

// closeBefore summarises the seconds before s into their SecondStats and
// recycles their histograms. Callers hold mu.
func (r *recorder) closeBefore(s int) {
	if s <= r.closed {
		return
	}
	keep := r.live[:0]
	for _, l := range r.live {
		if l.sec >= s {
			keep = append(keep, l)
			continue
		}
		b := r.bucket(l.sec)
		b.P50 = ms(l.hist.ValueAtQuantile(50))
		b.P99 = ms(l.hist.ValueAtQuantile(99))
		b.Max = ms(l.hist.Max())
		l.hist.Reset()
		r.spare = append(r.spare, l.hist)
	}
	clear(r.live[len(keep):])
	r.live = keep
	r.closed = s
}

// shed reports whether an answer turned the request away undecided: the
// server's load shedding (503) or rate limits (429).
func shed(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

func ms(us int64) float64 { return float64(us) / 1000 }

// progress is a live view for the progress line.
type progress struct {
	sent, completed, reserved, replayed, soldOut, failed int64
	p99                                                  float64
}

func (r *recorder) progress() progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := progress{
		sent:      r.sent.Load(),
		completed: r.completed,
		reserved:  r.codes[codeReserved],
		replayed:  r.codes[codeReplayed],
		soldOut:   r.codes[codeSoldOut],
		p99:       ms(r.all.ValueAtQuantile(99)),
	}
	for _, b := range r.secs {
		p.failed += b.Failed
	}
	return p
}

// fill summarises everything recorded into res, with at least one second
// entry per started second of elapsed.
func (r *recorder) fill(res *Result, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeBefore(len(r.secs)) // every live second is below len(secs)
	n := int((elapsed + time.Second - 1) / time.Second)
	if n > 0 {
		r.bucket(n - 1)
	}
	res.Seconds = append([]SecondStats(nil), r.secs...)
	res.Sent = r.sent.Load()
	res.Completed = r.completed
	res.Errors = r.errors
	res.Status = make(map[int]int64, len(r.status))
	for k, v := range r.status {
		res.Status[k] = v
	}
	res.Codes = make(map[string]int64, len(r.codes))
	for k, v := range r.codes {
		res.Codes[k] = v
	}
	res.Latency = summarise(r.all)
	res.Admitted = summarise(r.admitted)
	res.Shed = r.shed
	res.BadServerErrors = r.bad5xx
	res.Client.Late = r.late.Load()
	if res.Sent > 0 {
		res.Client.LateShare = float64(res.Client.Late) / float64(res.Sent)
	}
	res.SoldOutAt = Duration(r.soldOutAt)
}

func summarise(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Count: h.TotalCount(),
	}
}
