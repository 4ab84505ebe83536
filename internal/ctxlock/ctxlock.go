// Package ctxlock is a mutex whose waiters may give up when their context
// ends.
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

// Mutex is a sync.Mutex (Lock, Unlock and TryLock are its own) that Lock
// can also take unless a context ends first. The zero value is unlocked.
//
// The waiters of Lock that could not take it at once form a line, in the
// order they came. One goroutine waits in the mutex's Lock for all of them
// and hands it to the first still waiting: a waiter that gives up only
// leaves the line, so the goroutines waiting on a mutex held for as long
// as a stalled disk stalls are one, not one per request that gave up
// meanwhile.
type Mutex struct {
	sync.Mutex
	lineMu  sync.Mutex
	waiting []chan struct{}
	taking  bool // a goroutine (take) waits for the mutex for the line
}

// Lock takes mu unless ctx ends first, and then returns ctx's error. A
// lock held across a commit is held as long as a stalled disk stalls it; a
// request must not wait that out, and one that gives up leaves nothing
// behind.
func Lock(ctx context.Context, mu *Mutex) error {
	if mu.TryLock() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	got := make(chan struct{}, 1) // take never waits for the waiter
	mu.lineMu.Lock()
	mu.waiting = append(mu.waiting, got)
	if !mu.taking {
		mu.taking = true
		go mu.take()
	}
	mu.lineMu.Unlock()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
	}
	mu.lineMu.Lock()
	i := slices.Index(mu.waiting, got)
	if i >= 0 {
		mu.waiting = slices.Delete(mu.waiting, i, i+1)
	}
	mu.lineMu.Unlock()
	if i < 0 {
		// Handed the mutex as ctx ended: hand it back.
		<-got
		mu.Unlock()
	}
	return ctx.Err()
}

// take takes mu for its line's waiters, one after another, and ends once
// none is left (the next waiter then starts another).
func (mu *Mutex) take() {
	for {
		mu.Mutex.Lock()
		mu.lineMu.Lock()
		if len(mu.waiting) == 0 {
			mu.taking = false
			mu.lineMu.Unlock()
			mu.Mutex.Unlock()
			return
		}
		got := mu.waiting[0]
		mu.waiting = slices.Delete(mu.waiting, 0, 1)
		mu.lineMu.Unlock()
		got <- struct{}{} // the waiter holds mu now
	}
}
