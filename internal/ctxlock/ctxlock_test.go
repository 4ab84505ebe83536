package ctxlock

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	var mu Mutex
	if err := Lock(t.Context(), &mu); err != nil {
		t.Fatal(err)
	}
	// Held: a waiter gives up when its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := Lock(ctx, &mu); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held mutex = %v, want %v", err, context.DeadlineExceeded)
	}
	// The waiter that gave up hands the lock back once it gets it.
	mu.Unlock()
	got := make(chan error, 1)
	go func() { got <- Lock(t.Context(), &mu) }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the mutex was never handed back by the waiter that gave up")
	}
	mu.Unlock()
}

// TestWaitersShareOneGoroutine: waiters on a held mutex, some giving up,
// some not, leave one goroutine between them, and the mutex passes to each
// that still waits, one at a time.
func TestWaitersShareOneGoroutine(t *testing.T) {
	var mu Mutex
	mu.Lock()
	before := runtime.NumGoroutine()
	for range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// Ended before it came: returns at once, and never queues.
		if err := Lock(ctx, &mu); !errors.Is(err, context.Canceled) {
			t.Fatalf("Lock with an ended context = %v", err)
		}
		ctx, cancel = context.WithTimeout(t.Context(), time.Millisecond)
		if err := Lock(ctx, &mu); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock of a held mutex = %v", err)
		}
		cancel()
	}
	if grew := runtime.NumGoroutine() - before; grew > 5 {
		t.Errorf("200 waiters that gave up left %d goroutines, want a few at most (one waits on the mutex)", grew)
	}
	// Waiters that stay get the mutex in turn.
	var held, most atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Lock(t.Context(), &mu); err != nil {
				t.Error(err)
				return
			}
			n := held.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(time.Millisecond)
			held.Add(-1)
			mu.Unlock()
		}()
	}
	mu.Unlock()
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d waiters held the mutex at once", most.Load())
	}
	if !mu.TryLock() {
		t.Error("the mutex is still held once every waiter is done")
	}
}
