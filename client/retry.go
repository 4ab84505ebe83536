package client

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds how a client retries refusals (429, 503; a proxy's
// 502 and 504) and connections refused or lost: each wait is the
// answer's Retry-After (none after a lost connection) plus a jittered
// exponential backoff, so that many clients refused at once do not come
// back as one wave (docs/protection.md, "What a client should do"). A
// zero field takes its default.
type RetryPolicy struct {
	// MaxAttempts counts every send, the first included (default 5); 1
	// turns retrying off.
	MaxAttempts int
	// MaxElapsed bounds the time from the first send: a retry whose wait
	// would end after it is not made, and the last refusal is returned
	// at once (default 30 s). So is a retry whose wait would end after
	// the deadline of the call's context.
	MaxElapsed time.Duration
	// Backoff is the first backoff above Retry-After (default 100 ms); it
	// doubles with each retry, up to MaxBackoff (default 5 s). The wait
	// adds between half of it and all of it.
	Backoff, MaxBackoff time.Duration
}

// Defaults of RetryPolicy.
const (
	DefaultMaxAttempts = 5
	DefaultMaxElapsed  = 30 * time.Second
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	if p.Backoff <= 0 {
		p.Backoff = DefaultBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	return p
}

// wait is how long to wait before attempt+1, after attempt was refused
// with Retry-After floor, elapsed after the first send; false: give up.
func (p RetryPolicy) wait(attempt int, floor, elapsed time.Duration) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	// Compared before they are added: a Retry-After centuries away (an
	// HTTP date; time.Until saturates) plus the backoff would overflow
	// to a negative wait, a retry at once instead of giving up.
	left := p.MaxElapsed - elapsed
	if floor > left {
		return 0, false
	}
	b := p.Backoff
	for i := 1; i < attempt && b < p.MaxBackoff; i++ {
		if b > p.MaxBackoff/2 {
			b = p.MaxBackoff
			break
		}
		b *= 2
	}
	b = min(b, p.MaxBackoff)
	d := floor + b/2 + rand.N(b/2+1)
	if d < 0 || d > left {
		return 0, false
	}
	return d, true
}
