package client

import (
	"net/http"
	"testing"
	"time"
)

// Each wait is Retry-After plus half to all of the backoff, which doubles
// up to MaxBackoff; no wait past MaxAttempts or MaxElapsed.
func TestRetryPolicyWait(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 6, MaxElapsed: time.Minute, Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
	for _, tt := range []struct {
		name     string
		attempt  int
		floor    time.Duration
		elapsed  time.Duration
		min, max time.Duration // 0, 0: give up
	}{
		{"first retry, no hint", 1, 0, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{"first retry after Retry-After 1", 1, time.Second, 0, 1050 * time.Millisecond, 1100 * time.Millisecond},
		{"backoff doubles", 2, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{"backoff capped", 5, 0, 0, 150 * time.Millisecond, 300 * time.Millisecond},
		{"past MaxAttempts", 6, 0, 0, 0, 0},
		{"past MaxElapsed", 1, time.Second, 59 * time.Second, 0, 0},
		{"Retry-After beyond MaxElapsed", 1, 2 * time.Minute, 0, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 { // the jitter stays within its bounds
				d, ok := p.wait(tt.attempt, tt.floor, tt.elapsed)
				if tt.max == 0 {
					if ok {
						t.Fatalf("wait %v, want to give up", d)
					}
					return
				}
				if !ok || d < tt.min || d > tt.max {
					t.Fatalf("wait %v (%v), want %v to %v", d, ok, tt.min, tt.max)
				}
			}
		})
	}
	if d := (RetryPolicy{}).withDefaults(); d.MaxAttempts != DefaultMaxAttempts || d.MaxElapsed != DefaultMaxElapsed ||
		d.Backoff != DefaultBackoff || d.MaxBackoff != DefaultMaxBackoff {
		t.Errorf("defaults %+v", d)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	for _, tt := range []struct {
		v        string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"1", time.Second, time.Second},
		{" 30 ", 30 * time.Second, 30 * time.Second},
		{"-1", 0, 0},
		{"soon", 0, 0},
		// Past an hour, an hour: the most the server itself says.
		{"3601", time.Hour, time.Hour},
		{"2147483649", time.Hour, time.Hour},
		{"99999999999", time.Hour, time.Hour},
		{"99999999999999999999", time.Hour, time.Hour},
		{"-99999999999999999999", 0, 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", time.Hour, time.Hour},
		{time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat), 8 * time.Second, 10 * time.Second},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
	} {
		if got := retryAfter(tt.v); got < tt.min || got > tt.max {
			t.Errorf("retryAfter(%q) = %v, want %v to %v", tt.v, got, tt.min, tt.max)
		}
	}
}
