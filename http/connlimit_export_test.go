package http

import "time"

// SetConnClock replaces the limiter's clock, so tests age idle connections
// without waiting; call it before the limiter accepts.
func SetConnClock(l *ConnLimiter, now func() time.Time) { l.now = now }
