package sqlite_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
)

// TestSlowExportsLeaveReadsAConnection: an export streams while its client
// reads, holding a reader connection all along, and a client may read as
// slowly as it likes. As many exports as the reader pool has connections
// must not stall the reads that answer buyers: an order's read, a
// cancel's, and a purchase's look-up of an old idempotency key on disk,
// which runs under the sale's lock. Exports past their share are refused,
// overloaded, to retry.
func TestSlowExportsLeaveReadsAConnection(t *testing.T) {
	const exports = 8 // the reader pool's connections
	ctx := t.Context()
	now := t0
	s, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{NoExpiry: true, IdempotencyTTL: time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	sale := newSale(t, "s", 100, 100)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	reserve := func(p surge.Purchase) surge.Order {
		t.Helper()
		outs, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{p}, surge.At(now))
		if err != nil || outs[0].Code != surge.CodeReserved {
			t.Fatalf("reserve %+v: %+v, %v", p, outs, err)
		}
		return outs[0].Order
	}
	// An old key's order, cancelled and forgotten by memory: a purchase
	// naming a key memory does not hold then looks on disk.
	old := reserve(surge.Purchase{UserID: "u", IdempotencyKey: "k0", Quantity: 1})
	if _, err := s.Cancel(ctx, old.ID, now); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(2 * time.Hour)
	if _, err := s.Expire(ctx, now); err != nil { // the key sweep rides on it
		t.Fatal(err)
	}
	if _, st := s.LookupKey(sale.ID, "u", "k1"); st != surge.KeyMaybe {
		t.Fatalf("an unknown key = %v, want KeyMaybe (looked up on disk)", st)
	}
	toRead := reserve(surge.Purchase{UserID: "v", Quantity: 1})
	toCancel := reserve(surge.Purchase{UserID: "w", Quantity: 1})

	// Slow clients: each export stops at its first order until the end.
	release := make(chan struct{})
	var (
		mu             sync.Mutex
		held, refused  int
		otherErrs      []error
		wg             sync.WaitGroup
		settled        = make(chan struct{}, exports)
		releaseOnce    sync.Once
		releaseExports = func() { releaseOnce.Do(func() { close(release) }) }
	)
	defer wg.Wait()
	defer releaseExports()
	for range exports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			err := s.Orders(context.Background(), sale.ID, func(surge.Order) error {
				if first {
					first = false
					mu.Lock()
					held++
					mu.Unlock()
					settled <- struct{}{}
					<-release
				}
				return nil
			})
			if first { // never held a connection
				mu.Lock()
				if surge.ErrorCode(err) == surge.CodeOverloaded {
					refused++
				} else {
					otherErrs = append(otherErrs, err)
				}
				mu.Unlock()
				settled <- struct{}{}
			}
		}()
	}
	timeout := time.After(10 * time.Second)
	for range exports {
		select {
		case <-settled:
		case <-timeout:
			t.Fatalf("the exports neither streamed nor were refused within 10s")
		}
	}
	mu.Lock()
	if held == 0 || len(otherErrs) > 0 {
		t.Fatalf("%d exports streaming, %d refused, errors %v: want some streaming, the rest refused overloaded", held, refused, otherErrs)
	}
	mu.Unlock()

	for _, tc := range []struct {
		name string
		read func(context.Context) error
	}{
		{"order read", func(ctx context.Context) error {
			_, err := s.Order(ctx, toRead.ID)
			return err
		}},
		{"cancel", func(ctx context.Context) error {
			_, err := s.Cancel(ctx, toCancel.ID, now)
			return err
		}},
		{"purchase with a key looked up on disk", func(ctx context.Context) error {
			outs, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: "u", IdempotencyKey: "k1", Quantity: 1}}, surge.At(now))
			if err == nil && outs[0].Code != surge.CodeReserved {
				t.Errorf("purchase: %+v, want reserved", outs[0])
			}
			return err
		}},
	} {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := tc.read(rctx)
		cancel()
		if err != nil {
			t.Errorf("%s while %d exports stream to slow clients: %v, want an answer", tc.name, held, err)
		}
	}
}
