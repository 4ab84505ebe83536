package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestShapeRate(t *testing.T) {
	c := Constant{PerSecond: 1000, For: 2 * time.Second}
	s := Spike{Peak: 5000, Ramp: 2 * time.Second, Hold: 5 * time.Second, Decay: 2 * time.Second}
	tests := []struct {
		name  string
		shape Shape
		at    time.Duration
		want  float64
	}{
		{"constant before start", c, -time.Nanosecond, 0},
		{"constant at start", c, 0, 1000},
		{"constant mid", c, time.Second, 1000},
		{"constant just before end", c, 2*time.Second - time.Nanosecond, 1000},
		{"constant at end", c, 2 * time.Second, 0},
		{"constant after end", c, time.Hour, 0},
		{"spike before start", s, -time.Second, 0},
		{"spike at start", s, 0, 0},
		{"spike mid ramp", s, time.Second, 2500},
		{"spike end of ramp", s, 2 * time.Second, 5000},
		{"spike hold", s, 5 * time.Second, 5000},
		{"spike end of hold", s, 7 * time.Second, 2500 * 2},
		{"spike mid decay", s, 8 * time.Second, 2500},
		{"spike at end", s, 9 * time.Second, 0},
		{"spike after end", s, 10 * time.Second, 0},
		{"spike without ramp starts at peak", Spike{Peak: 100, Hold: time.Second}, 0, 100},
		{"spike without hold or decay", Spike{Peak: 100, Ramp: time.Second}, time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.shape.Rate(tt.at); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Rate(%v) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

func TestShapeLengthAndString(t *testing.T) {
	c := Constant{PerSecond: 2000, For: 10 * time.Second}
	if c.Length() != 10*time.Second || c.String() != "constant 2000/s for 10s" {
		t.Errorf("constant: length %v, string %q", c.Length(), c.String())
	}
	s := Spike{Peak: 5000, Ramp: 2 * time.Second, Hold: 5 * time.Second, Decay: 2 * time.Second}
	if s.Length() != 9*time.Second || s.String() != "spike 0→5000/s in 2s, hold 5s, decay 2s" {
		t.Errorf("spike: length %v, string %q", s.Length(), s.String())
	}
}

func collect(s Shape) []time.Duration {
	var out []time.Duration
	for off := range Schedule(s) {
		out = append(out, off)
	}
	return out
}

func TestScheduleConstantEvenlySpaced(t *testing.T) {
	offs := collect(Constant{PerSecond: 1000, For: 2 * time.Second})
	if len(offs) != 2000 {
		t.Fatalf("got %d offsets, want 2000", len(offs))
	}
	// Request k is due when the integral reaches k-½: 0.5 ms, 1.5 ms, …
	for k, off := range offs {
		want := time.Duration(k)*time.Millisecond + 500*time.Microsecond
		if d := off - want; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("offset %d = %v, want %v", k, off, want)
		}
	}
}

func TestScheduleCounts(t *testing.T) {
	tests := []struct {
		name  string
		shape Shape
		want  float64 // the integral of the rate
	}{
		{"constant", Constant{PerSecond: 2000, For: 10 * time.Second}, 20000},
		{"constant fractional", Constant{PerSecond: 333.3, For: 3 * time.Second}, 999.9},
		{"constant slow", Constant{PerSecond: 0.5, For: 9 * time.Second}, 4.5},
		{"constant sub-step", Constant{PerSecond: 1e6, For: 1500 * time.Microsecond}, 1500},
		{"spike", Spike{Peak: 5000, Ramp: 2 * time.Second, Hold: 5 * time.Second, Decay: 2 * time.Second}, 5000 * (1 + 5 + 1)},
		{"spike odd", Spike{Peak: 777, Ramp: 1300 * time.Millisecond, Hold: 10 * time.Millisecond, Decay: 3100 * time.Millisecond}, 777 * (0.65 + 0.01 + 1.55)},
		{"spike ramp only", Spike{Peak: 1000, Ramp: time.Second}, 500},
		{"spike hold only", Spike{Peak: 1000, Hold: time.Second}, 1000},
		{"spike decay only", Spike{Peak: 1000, Decay: time.Second}, 500},
		{"empty", Constant{PerSecond: 1000}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offs := collect(tt.shape)
			if math.Abs(float64(len(offs))-tt.want) > 1 {
				t.Errorf("got %d offsets, want %.1f ± 1", len(offs), tt.want)
			}
			for i, off := range offs {
				if off < 0 || off > tt.shape.Length() {
					t.Fatalf("offset %d = %v outside [0, %v]", i, off, tt.shape.Length())
				}
				if i > 0 && off < offs[i-1] {
					t.Fatalf("offset %d = %v before offset %d = %v", i, off, i-1, offs[i-1])
				}
			}
		})
	}
}

// The spike's requests follow its rate: a quarter of them in the first
// half of the ramp (rate rising linearly).
func TestScheduleFollowsRate(t *testing.T) {
	s := Spike{Peak: 4000, Ramp: 2 * time.Second, Hold: time.Second, Decay: 2 * time.Second}
	var firstHalfOfRamp, ramp, hold, decay int
	for off := range Schedule(s) {
		switch {
		case off < time.Second:
			firstHalfOfRamp++
			ramp++
		case off < 2*time.Second:
			ramp++
		case off < 3*time.Second:
			hold++
		default:
			decay++
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"first half of ramp", firstHalfOfRamp, 1000},
		{"ramp", ramp, 4000},
		{"hold", hold, 4000},
		{"decay", decay, 4000},
	} {
		if c.got < c.want-2 || c.got > c.want+2 {
			t.Errorf("%s: %d requests, want %d ± 2", c.name, c.got, c.want)
		}
	}
}

func TestScheduleStopsEarly(t *testing.T) {
	n := 0
	for range Schedule(Constant{PerSecond: 1e6, For: time.Hour}) {
		if n++; n == 10 {
			break
		}
	}
	if n != 10 {
		t.Errorf("got %d offsets, want 10", n)
	}
}

func TestParseShape(t *testing.T) {
	good := []struct {
		spec string
		want Shape
	}{
		{"constant:2000:10s", Constant{PerSecond: 2000, For: 10 * time.Second}},
		{"constant:0.5:1m", Constant{PerSecond: 0.5, For: time.Minute}},
		{" Constant:100:500ms ", Constant{PerSecond: 100, For: 500 * time.Millisecond}},
		{"spike:5000:2s:5s:2s", Spike{Peak: 5000, Ramp: 2 * time.Second, Hold: 5 * time.Second, Decay: 2 * time.Second}},
		{"spike:100:0s:1s:0s", Spike{Peak: 100, Hold: time.Second}},
	}
	for _, tt := range good {
		got, err := ParseShape(tt.spec)
		if err != nil || got != tt.want {
			t.Errorf("ParseShape(%q) = %v, %v; want %v", tt.spec, got, err, tt.want)
		}
	}
	bad := []struct{ spec, wantErr string }{
		{"", "unknown kind"},
		{"ramp:1:2s", "unknown kind"},
		{"constant", "want constant:RATE:DURATION"},
		{"constant:2000", "want constant:RATE:DURATION"},
		{"constant:2000:10s:1s", "want constant:RATE:DURATION"},
		{"constant:abc:10s", "RATE must be a positive number"},
		{"constant:0:10s", "RATE must be a positive number"},
		{"constant:-5:10s", "RATE must be a positive number"},
		{"constant:NaN:10s", "RATE must be a positive number"},
		{"constant:Inf:10s", "RATE must be a positive number"},
		{"constant:100:10", "DURATION must be a duration"},
		{"constant:100:0s", "DURATION must be positive"},
		{"constant:100:-1s", "DURATION must be a duration"},
		{"constant:100:48h", "DURATION must be a duration"},
		{"spike:5000:2s:5s", "want spike:PEAK:RAMP:HOLD:DECAY"},
		{"spike:0:2s:5s:2s", "PEAK must be a positive number"},
		{"spike:5000:x:5s:2s", "RAMP must be a duration"},
		{"spike:5000:2s:x:2s", "HOLD must be a duration"},
		{"spike:5000:2s:5s:x", "DECAY must be a duration"},
		{"spike:5000:0s:0s:0s", "RAMP+HOLD+DECAY must be positive"},
	}
	for _, tt := range bad {
		got, err := ParseShape(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseShape(%q) = %v, %v; want error containing %q", tt.spec, got, err, tt.wantErr)
		}
	}
}
