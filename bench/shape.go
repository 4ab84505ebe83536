package bench

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
)

// Constant offers PerSecond requests per second for For.
type Constant struct {
	PerSecond float64
	For       time.Duration
}

// Rate implements Shape.
func (c Constant) Rate(t time.Duration) float64 {
	if t < 0 || t >= c.For {
		return 0
	}
	return c.PerSecond
}

// Length implements Shape.
func (c Constant) Length() time.Duration { return c.For }

func (c Constant) String() string {
	return fmt.Sprintf("constant %s/s for %s", formatRate(c.PerSecond), c.For)
}

// Spike ramps linearly from 0 to Peak requests per second over Ramp, holds
// Peak for Hold, then decays linearly to 0 over Decay: the shape of a drop
// announced to a crowd.
type Spike struct {
	Peak              float64
	Ramp, Hold, Decay time.Duration
}

// Rate implements Shape.
func (s Spike) Rate(t time.Duration) float64 {
	switch {
	case t < 0:
		return 0
	case t < s.Ramp:
		return s.Peak * float64(t) / float64(s.Ramp)
	case t < s.Ramp+s.Hold:
		return s.Peak
	case t < s.Length():
		left := s.Length() - t
		return s.Peak * float64(left) / float64(s.Decay)
	}
	return 0
}

// Length implements Shape.
func (s Spike) Length() time.Duration { return s.Ramp + s.Hold + s.Decay }

func (s Spike) String() string {
	return fmt.Sprintf("spike 0→%s/s in %s, hold %s, decay %s", formatRate(s.Peak), s.Ramp, s.Hold, s.Decay)
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// scheduleStep is the integration step of Schedule: fine enough that the
// rate barely changes within a step, coarse enough to stay cheap.
const (
	scheduleStep     = time.Millisecond
	maxScheduleSteps = 10_000_000
)

// Schedule yields the offsets from the start at which an open-loop run
// sends its requests, in increasing order. The k-th request (k = 1, 2, …)
// is due when the integral of s.Rate reaches k − ½: each request sits in
// the middle of its unit of offered load, so the count is the integral
// rounded, and no request falls on the very end of the shape (where a run
// bounded by the same duration would drop it).
//
// The rate is integrated with the midpoint rule over steps of about 1 ms
// that divide the length evenly, which is exact for constant and linear
// pieces; within a step requests are spaced evenly.
func Schedule(s Shape) iter.Seq[time.Duration] {
	return func(yield func(time.Duration) bool) {
		length := s.Length()
		if length <= 0 {
			return
		}
		steps := int64(math.Ceil(float64(length) / float64(scheduleStep)))
		steps = min(max(steps, 1), maxScheduleSteps)
		total := length.Seconds()
		dt := total / float64(steps)
		acc := 0.0  // integral of the rate up to the current step
		next := 0.5 // the integral at which the next request is due
		// A request exactly at a step's end must not be lost to rounding
		// of acc; eps is far below one request.
		const eps = 1e-9
		for i := range steps {
			t0 := float64(i) * dt
			r := s.Rate(seconds(t0 + dt/2))
			if !(r > 0) || math.IsInf(r, 0) { // also NaN
				continue
			}
			end := acc + r*dt
			for next <= end+eps {
				at := min(t0+(next-acc)/r, total)
				if !yield(seconds(at)) {
					return
				}
				next++
			}
			acc = end
		}
	}
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// Shape specs for ParseShape.
const (
	constantSpec = "constant:RATE:DURATION (e.g. constant:2000:10s)"
	spikeSpec    = "spike:PEAK:RAMP:HOLD:DECAY (e.g. spike:5000:2s:5s:2s)"
)

// ParseShape reads a shape from the command line: "constant:RATE:DURATION"
// (e.g. constant:2000:10s) or "spike:PEAK:RAMP:HOLD:DECAY" (e.g.
// spike:5000:2s:5s:2s). Rates are requests per second.
func ParseShape(spec string) (Shape, error) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(spec), ":")
	parts := strings.Split(rest, ":")
	switch strings.ToLower(kind) {
	case "constant":
		if len(parts) != 2 {
			return nil, fmt.Errorf("shape %q: want %s", spec, constantSpec)
		}
		rate, err := parseRate("RATE", parts[0])
		if err != nil {
			return nil, fmt.Errorf("shape %q: %w", spec, err)
		}
		d, err := parseSpan("DURATION", parts[1])
		if err == nil && d == 0 {
			err = errors.New("DURATION must be positive")
		}
		if err != nil {
			return nil, fmt.Errorf("shape %q: %w", spec, err)
		}
		return Constant{PerSecond: rate, For: d}, nil
	case "spike":
		if len(parts) != 4 {
			return nil, fmt.Errorf("shape %q: want %s", spec, spikeSpec)
		}
		peak, err := parseRate("PEAK", parts[0])
		if err != nil {
			return nil, fmt.Errorf("shape %q: %w", spec, err)
		}
		var ds [3]time.Duration
		for i, name := range []string{"RAMP", "HOLD", "DECAY"} {
			if ds[i], err = parseSpan(name, parts[i+1]); err != nil {
				return nil, fmt.Errorf("shape %q: %w", spec, err)
			}
		}
		s := Spike{Peak: peak, Ramp: ds[0], Hold: ds[1], Decay: ds[2]}
		if s.Length() <= 0 {
			return nil, fmt.Errorf("shape %q: RAMP+HOLD+DECAY must be positive", spec)
		}
		return s, nil
	}
	return nil, fmt.Errorf("shape %q: unknown kind %q; want %s or %s", spec, kind, constantSpec, spikeSpec)
}

func parseRate(name, s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || !(r > 0) || math.IsInf(r, 0) {
		return 0, fmt.Errorf("%s must be a positive number of requests per second, not %q", name, s)
	}
	return r, nil
}

// maxSpan keeps shapes within what a run can sensibly last.
const maxSpan = 24 * time.Hour

func parseSpan(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxSpan {
		return 0, fmt.Errorf("%s must be a duration between 0s and %s such as 10s or 500ms, not %q", name, maxSpan, s)
	}
	return d, nil
}

// Compile-time checks that the shapes implement Shape.
var (
	_ Shape = Constant{}
	_ Shape = Spike{}
)
