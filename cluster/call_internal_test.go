package cluster

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCall measures Store.call's own cost around a call that does
// nothing: the call timeout's context and timer and the breaker. The
// reserve path makes two calls per batch (Redis, then PostgreSQL).
func BenchmarkCall(b *testing.B) {
	s := &Store{cfg: Config{CallTimeout: 2 * time.Second, BreakerOpen: 5 * time.Second}}
	cb := s.breaker("bench")
	// A request's context, cancelable as net/http's is.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nop := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := s.call(ctx, cb, nop); err != nil {
			b.Fatal(err)
		}
	}
}
