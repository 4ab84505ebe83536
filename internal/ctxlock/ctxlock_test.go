package ctxlock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLock(t *testing.T) {
	var mu sync.Mutex
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
