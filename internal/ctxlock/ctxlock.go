// Package ctxlock takes a sync.Mutex unless a context ends first.
//
// Written here, not golang.org/x/sync/semaphore (whose Acquire takes a
// context): the locks are a sale's and the engine's, which the purchase
// path takes plainly on every batch, and a Weighted of one in their place
// would make each purchase pay for the waits of a few admin requests.
package ctxlock

import (
	"context"
	"sync"
)

// Lock takes mu unless ctx ends first, and then returns ctx's error. A
// lock held across a commit is held as long as a stalled disk stalls it; a
// request must not wait that out. A waiter that gives up leaves a
// goroutine that still takes mu, in its turn (the mutex's own fairness),
// and hands it straight back.
func Lock(ctx context.Context, mu *sync.Mutex) error {
	if mu.TryLock() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	got := make(chan struct{})
	go func() {
		mu.Lock()
		select {
		case got <- struct{}{}:
		case <-ctx.Done():
			mu.Unlock()
		}
	}()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
