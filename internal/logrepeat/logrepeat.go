// Package logrepeat keeps a failure that repeats, such as a dependency
// that is down, from flooding the log: the first line of each key is
// written, then at most one a period, which counts the lines left out
// since the last one written.
//
// Written here because the libraries at hand do half of it:
// golang.org/x/time/rate's Sometimes writes the first and then one an
// interval, but neither counts what it left out nor keeps a key's state
// (a sale, a log format); slog samplers drop lines by rate without
// saying how many.
package logrepeat

import (
	"log/slog"
	"sync"
	"time"
)

// Every is the period of the Limiters the operational logs use.
const Every = 10 * time.Second

// maxKeys bounds the keys a Limiter remembers; beyond it, keys quiet for a
// period are forgotten (their next line is written, as a first one).
const maxKeys = 1024

// Limiter decides which of a key's repeated lines are written. The zero
// value is not usable; New makes one. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*state
}

type state struct {
	last       time.Time // the last line written
	suppressed int       // lines left out since
}

// New returns a Limiter that writes a key's line at most once every.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, keys: make(map[string]*state)}
}

// Allow reports whether a line of key is to be written now, and how many
// of key's lines were left out since the last one written (to be logged
// with it, e.g. as "suppressed").
func (l *Limiter) Allow(key string) (suppressed int, ok bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		if len(l.keys) >= maxKeys {
			l.prune(now)
		}
		l.keys[key] = &state{last: now}
		return 0, true
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return 0, false
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return n, true
}

// Done forgets key, whose failure is over, and returns how many of its
// lines were left out since the last one written (for the recovery line).
// The next line of key is written at once.
func (l *Limiter) Done(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		return 0
	}
	delete(l.keys, key)
	return st.suppressed
}

func (l *Limiter) prune(now time.Time) {
	for k, st := range l.keys {
		if now.Sub(st.last) >= l.every {
			delete(l.keys, k)
		}
	}
}

// Suppressed is the attribute of a line that counts the n lines of its
// key left out before it: "suppressed", or none when n is 0 (slog's
// handlers drop the empty Attr).
func Suppressed(n int) slog.Attr {
	if n == 0 {
		return slog.Attr{}
	}
	return slog.Int("suppressed", n)
}
