package bench

import (
	"math"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)

// near reports whether got is within the histogram's precision (3
// significant digits) of want.
func near(got, want float64) bool { return math.Abs(got-want) <= want*0.001+1e-9 }

func TestRecorderCoordinatedOmission(t *testing.T) {
	// Intended at t0, sent 50 ms late (every connection busy), answered
	// 1 ms after the send.
	a := attempt{
		due: t0, sent: t0.Add(50 * time.Millisecond), at: t0.Add(51 * time.Millisecond),
		status: 201, code: codeReserved, queued: true,
	}
	tests := []struct {
		name     string
		open     bool
		wantMs   float64
		wantLate int64
	}{
		{"open loop counts the wait", true, 51, 1},
		{"closed loop from the send", false, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder(t0, tt.open)
			r.record(a)
			var res Result
			r.fill(&res, time.Second)
			if !near(res.Latency.Max, tt.wantMs) || !near(res.Latency.P50, tt.wantMs) {
				t.Errorf("latency p50 %.3f ms, max %.3f ms; want %.0f ms", res.Latency.P50, res.Latency.Max, tt.wantMs)
			}
			if res.Client.Late != tt.wantLate {
				t.Errorf("late = %d, want %d", res.Client.Late, tt.wantLate)
			}
		})
	}
}

// TestRecorderLate: a send is late when it waited more than 1 ms for a
// connection, or left more than 20 ms after its time whatever the cause; a
// few ms of the scheduler's jitter with a connection free is not late
// (surge demo, never short of a connection, counted a tenth of its sends
// late and warned that its shape was not delivered).
func TestRecorderLate(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		lag    time.Duration
		queued bool
		late   bool
	}{
		{0, true, false},
		{500 * time.Microsecond, true, false},
		{ms, true, false},
		{ms + time.Microsecond, true, true},
		{time.Second, true, true},
		{ms + time.Microsecond, false, false},
		{5 * ms, false, false},
		{20 * ms, false, false},
		{20*ms + time.Microsecond, false, true},
		{time.Second, false, true},
	}
	for _, tt := range tests {
		r := newRecorder(t0, true)
		r.record(attempt{due: t0, sent: t0.Add(tt.lag), at: t0.Add(tt.lag + ms), status: 409, code: "sold_out", queued: tt.queued})
		if got := r.late.Load() == 1; got != tt.late {
			t.Errorf("sent %v after its time, every connection busy %v: late %v, want %v", tt.lag, tt.queued, got, tt.late)
		}
	}
}

func TestRecorderPercentiles(t *testing.T) {
	r := newRecorder(t0, false)
	// 1..1000 ms, once each, all answered in second 0 of a long run.
	for i := 1; i <= 1000; i++ {
		at := t0.Add(time.Duration(i) * time.Microsecond)
		r.record(attempt{sent: at.Add(-time.Duration(i) * time.Millisecond), at: at, status: 409, code: "sold_out"})
	}
	var res Result
	r.fill(&res, time.Second)
	l := res.Latency
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mean", l.Mean, 500.5},
		{"p50", l.P50, 500},
		{"p90", l.P90, 900},
		{"p99", l.P99, 990},
		{"p99.9", l.P999, 999},
		{"max", l.Max, 1000},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %.3f ms, want %.1f", c.name, c.got, c.want)
		}
	}
	if l.Count != 1000 {
		t.Errorf("count = %d, want 1000", l.Count)
	}
	// Latencies outside the histogram's range are clamped, not dropped.
	r.record(attempt{sent: t0, at: t0, status: 409, code: "sold_out"})
	r.record(attempt{sent: t0, at: t0.Add(2 * time.Minute), status: 409, code: "sold_out"})
	r.fill(&res, 3*time.Minute)
	if res.Latency.Count != 1002 || !near(res.Latency.Max, 60_000) {
		t.Errorf("after out-of-range values: count %d, max %.1f ms; want 1002, 60000", res.Latency.Count, res.Latency.Max)
	}
}

func TestRecorderSeconds(t *testing.T) {
	r := newRecorder(t0, true)
	sec := func(s int, ms int) time.Time {
		return t0.Add(time.Duration(s)*time.Second + time.Duration(ms)*time.Millisecond)
	}
	// Second 0: 3 offered; two 201s (10 ms), one 409 (30 ms).
	// Second 1: 2 offered; a 503 (5 ms) and a transport error (499 ms).
	// Second 3: a 400 (100 ms), answered after a gap.
	for _, at := range []time.Time{sec(0, 0), sec(0, 100), sec(0, 900), sec(1, 0), sec(1, 1)} {
		r.offer(at)
	}
	r.offer(t0.Add(-time.Millisecond)) // before the start: second 0
	for _, a := range []attempt{
		{due: sec(0, 0), at: sec(0, 10), status: 201, code: codeReserved},
		{due: sec(0, 100), at: sec(0, 110), status: 201, code: codeReserved},
		{due: sec(0, 900), at: sec(0, 930), status: 409, code: "sold_out"},
		{due: sec(1, 0), at: sec(1, 5), status: 503, code: "overloaded"},
		{due: sec(1, 1), at: sec(1, 500), code: codeTransport},
		{due: sec(3, 0), at: sec(3, 100), status: 400, code: "invalid_request"},
	} {
		a.sent = a.due
		r.record(a)
	}
	var res Result
	r.fill(&res, 4500*time.Millisecond)
	want := []SecondStats{
		{Second: 0, Offered: 4, Completed: 3, Reserved: 2, Rejected: 1, P50: 10, P99: 30, Max: 30},
		{Second: 1, Offered: 2, Completed: 1, Failed: 2, P50: 5, P99: 499, Max: 499},
		{Second: 2},
		{Second: 3, Completed: 1, Failed: 1, P50: 100, P99: 100, Max: 100},
		{Second: 4}, // the run lasted into its fifth second
	}
	if len(res.Seconds) != len(want) {
		t.Fatalf("got %d seconds, want %d: %+v", len(res.Seconds), len(want), res.Seconds)
	}
	for i, w := range want {
		g := res.Seconds[i]
		if g.Second != w.Second || g.Offered != w.Offered || g.Completed != w.Completed || g.Reserved != w.Reserved ||
			g.Rejected != w.Rejected || g.Failed != w.Failed || !near(g.P50, w.P50) || !near(g.P99, w.P99) || !near(g.Max, w.Max) {
			t.Errorf("second %d = %+v, want %+v", i, g, w)
		}
	}
	if res.Sent != 0 || res.Completed != 5 || res.Errors != 1 {
		t.Errorf("sent %d, completed %d, errors %d; want 0 (nothing went through sending), 5, 1", res.Sent, res.Completed, res.Errors)
	}
	wantStatus := map[int]int64{201: 2, 409: 1, 503: 1, 400: 1}
	wantCodes := map[string]int64{codeReserved: 2, "sold_out": 1, "overloaded": 1, codeTransport: 1, "invalid_request": 1}
	if !equalMaps(res.Status, wantStatus) || !equalMaps(res.Codes, wantCodes) {
		t.Errorf("status %v, codes %v; want %v, %v", res.Status, res.Codes, wantStatus, wantCodes)
	}
	if res.Latency.Count != 6 {
		t.Errorf("latency count %d, want 6 (the transport error too)", res.Latency.Count)
	}
}

// A second's histogram is summarised once later answers move on; an answer
// that still arrives for it counts, and raises its maximum.
func TestRecorderLateAnswerForClosedSecond(t *testing.T) {
	r := newRecorder(t0, false)
	at := func(s time.Duration) time.Time { return t0.Add(s * time.Second) }
	r.record(attempt{sent: at(0), at: at(0).Add(2 * time.Millisecond), status: 409, code: "sold_out"})
	r.record(attempt{sent: at(10), at: at(10).Add(time.Millisecond), status: 409, code: "sold_out"})
	if len(r.live) != 1 || r.closed != 10-secondGrace {
		t.Fatalf("after an answer in second 10: %d live seconds, closed below %d; want 1, %d", len(r.live), r.closed, 10-secondGrace)
	}
	r.record(attempt{sent: at(0), at: at(0).Add(7 * time.Millisecond), status: 201, code: codeReserved})
	var res Result
	r.fill(&res, 11*time.Second)
	s0 := res.Seconds[0]
	if s0.Completed != 2 || s0.Reserved != 1 || !near(s0.P50, 2) || !near(s0.Max, 7) {
		t.Errorf("second 0 = %+v; want 2 completed, 1 reserved, p50 2 ms, max 7 ms", s0)
	}
	if res.Latency.Count != 3 || !near(res.Latency.Max, 7) {
		t.Errorf("overall: count %d, max %.3f; want 3, 7 ms", res.Latency.Count, res.Latency.Max)
	}
	if len(r.spare)+len(r.live) > 2 {
		t.Errorf("%d histograms kept, want them recycled", len(r.spare)+len(r.live))
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := newRecorder(t0, true)
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				due := t0.Add(time.Duration(i) * time.Millisecond)
				r.offer(due)
				r.sending()
				status := []int{201, 409, 0}[(g+i)%3]
				r.record(attempt{due: due, sent: due, at: due.Add(time.Duration(g+1) * time.Millisecond), status: status, code: "c"})
			}
		})
	}
	wg.Wait()
	var res Result
	r.fill(&res, 2*time.Second)
	total := int64(goroutines * each)
	var offered, completed, reserved, rejected, failed int64
	for _, s := range res.Seconds {
		offered += s.Offered
		completed += s.Completed
		reserved += s.Reserved
		rejected += s.Rejected
		failed += s.Failed
	}
	if res.Sent != total || offered != total || res.Completed+res.Errors != total || completed != res.Completed ||
		reserved+rejected+failed != total || res.Latency.Count != total {
		t.Errorf("counts do not add up: sent %d, offered %d, completed %d (%d by second), errors %d, "+
			"reserved+rejected+failed %d, latencies %d; want %d in all",
			res.Sent, offered, res.Completed, completed, res.Errors, reserved+rejected+failed, res.Latency.Count, total)
	}
}

func equalMaps[K comparable](a, b map[K]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// BenchmarkRecorder measures the shared recorder under contention: the
// cost per answer bounds how much the client can spend on bookkeeping.
func BenchmarkRecorder(b *testing.B) {
	start := time.Now()
	r := newRecorder(start, true)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			due := start.Add(time.Duration(i) * time.Microsecond)
			r.offer(due)
			r.sending()
			r.record(attempt{due: due, sent: due, at: due.Add(time.Duration(i%5000) * time.Microsecond), status: 409, code: "sold_out"})
		}
	})
}

func TestRecorderAdmittedAndServerErrors(t *testing.T) {
	r := newRecorder(t0, false)
	rec := func(status int, retryAfter bool, ms int) {
		r.record(attempt{sent: t0, at: t0.Add(time.Duration(ms) * time.Millisecond), status: status, retryAfter: retryAfter})
	}
	// Admitted: a 201 (10 ms), a 409 (20 ms), a 400 (30 ms), a 500 (40 ms)
	// and a 502 (50 ms). Shed: a 429 and two 503s, all fast (1 ms). Not
	// an answer, and not shed either: a transport error after 1 s, which
	// counts in both latencies.
	rec(201, false, 10)
	rec(409, false, 20)
	rec(400, false, 30)
	rec(500, true, 40) // Retry-After does not excuse a 500
	rec(502, false, 50)
	rec(429, true, 1)
	rec(503, true, 1)
	rec(503, false, 1) // a 503 without Retry-After is not honest shedding
	r.record(attempt{sent: t0, at: t0.Add(time.Second), code: codeTransport})
	var res Result
	r.fill(&res, time.Second)
	if res.Shed != 3 {
		t.Errorf("shed = %d, want 3 (429 and 503 answers)", res.Shed)
	}
	if res.BadServerErrors != 3 {
		t.Errorf("bad 5xx = %d, want 3 (the 500, the 502, the 503 without Retry-After)", res.BadServerErrors)
	}
	a := res.Admitted
	if a.Count != 6 || !near(a.P50, 30) || !near(a.Max, 1000) {
		t.Errorf("admitted latency %+v, want 6 requests, p50 30 ms, max 1000 ms", a)
	}
	if res.Latency.Count != 9 || !near(res.Latency.P50, 20) || !near(res.Latency.Max, 1000) {
		t.Errorf("latency over every request %+v, want 9 with a p50 of 20 ms and a max of 1000 ms", res.Latency)
	}
}
