package waitroom

import "time"

// Schedule is a line's admit clock. Buyers are admitted in slots: slot
// k opens at Start + k/Rate, so slots open at exactly Rate per second from
// the sale's start. Each entry holds one slot; slots are unique within a
// queue and taken in the order buyers are admitted. A slot nobody took (the queue was
// empty then) is lost, never banked: capacity unused at one moment cannot
// be spent later in a burst.
type Schedule struct {
	Start time.Time
	Rate  int64 // slots per second, ≥ 1
}

// AdmitAt is when slot k opens. It rounds up, so that a slot never opens
// before its exact time and Opened(AdmitAt(k)) > k.
func (s Schedule) AdmitAt(k int64) time.Time {
	secs, rem := k/s.Rate, k%s.Rate
	frac := (rem*int64(time.Second) + s.Rate - 1) / s.Rate // rem < Rate ≤ 1e6: no overflow
	return s.Start.Add(time.Duration(secs)*time.Second + time.Duration(frac))
}

// Opened is the number of slots open at now: slots 0 to Opened(now)-1
// are admitted.
func (s Schedule) Opened(now time.Time) int64 {
	if now.Before(s.Start) {
		return 0
	}
	d := now.Sub(s.Start) // saturates at ~292 years, far past any sale
	secs, frac := int64(d/time.Second), int64(d%time.Second)
	return secs*s.Rate + frac*s.Rate/int64(time.Second) + 1
}

// FirstFree is the first slot that opens at or after now: where a buyer
// who joins at now goes when nobody is ahead.
func (s Schedule) FirstFree(now time.Time) int64 {
	return s.Opened(now.Add(-time.Nanosecond))
}
