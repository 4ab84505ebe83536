package http

import "time"

// SetConnClock replaces the limiter's clock, so tests age idle connections
// without waiting; call it before the limiter accepts.
func SetConnClock(l *ConnLimiter, now func() time.Time) { l.now = now }

// UnlistedIdle counts the connections that the ConnState hook has marked
// idle but not yet put on the idle list, while the list is kept: the two
// steps of the hook, between which Stats already counts the connection
// idle and a newcomer cannot yet reclaim it.
func UnlistedIdle(l *ConnLimiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tracking.Load() {
		return 0
	}
	n := 0
	for c := range l.conns {
		if c.idle.Load() != 0 && c.elem == nil {
			n++
		}
	}
	return n
}
