// Package ctxlock takes a sync.Mutex unless a context ends first.
//
// Written here, not golang.org/x/sync/semaphore (whose Acquire takes a
// context): the locks are a sale's and the engine's, which the purchase
// path takes plainly on every batch, and a Weighted of one in their place
// would make each purchase pay for the waits of a few admin requests.
package ctxlock

import (
	"context"
	"slices"
	"sync"
)

// line is the waiters of one mutex that could not take it at once, in
// the order they came. One goroutine (take) waits in the mutex's Lock for
// all of them and hands it to the first still waiting: a waiter that gives
// up only leaves the line, so the goroutines waiting on a mutex held for
// as long as a stalled disk stalls are one, not one per request that
// gave up meanwhile.
type line struct {
	waiting []chan struct{}
}

var (
	linesMu sync.Mutex
	lines   = map[*sync.Mutex]*line{}
)

// Lock takes mu unless ctx ends first, and then returns ctx's error. A
// lock held across a commit is held as long as a stalled disk stalls it; a
// request must not wait that out, and one that gives up leaves nothing
// behind (line).
func Lock(ctx context.Context, mu *sync.Mutex) error {
	if mu.TryLock() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	got := make(chan struct{}, 1) // take never waits for the waiter
	linesMu.Lock()
	l := lines[mu]
	if l == nil {
		l = &line{}
		lines[mu] = l
		go take(mu, l)
	}
	l.waiting = append(l.waiting, got)
	linesMu.Unlock()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
	}
	linesMu.Lock()
	i := slices.Index(l.waiting, got)
	if i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
	}
	linesMu.Unlock()
	if i < 0 {
		// Handed the mutex as ctx ended: hand it back.
		<-got
		mu.Unlock()
	}
	return ctx.Err()
}

// take takes mu for the waiters of l, one after another, and ends once
// none is left (the next waiter then starts another).
func take(mu *sync.Mutex, l *line) {
	for {
		mu.Lock()
		linesMu.Lock()
		if len(l.waiting) == 0 {
			delete(lines, mu)
			linesMu.Unlock()
			mu.Unlock()
			return
		}
		got := l.waiting[0]
		l.waiting = slices.Delete(l.waiting, 0, 1)
		linesMu.Unlock()
		got <- struct{}{} // the waiter holds mu now
	}
}
