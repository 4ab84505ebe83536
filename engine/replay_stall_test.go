package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
)

// TestReplayDuringStall: the retry of a purchase whose 201 is durable is
// answered from memory while the store's disk stalls, on a live sale as
// on a sold-out one. It went through the inbox and waited behind the
// stalled batch, to be answered 503 at PurchaseTimeout: a retry after a
// timeout comes exactly when the store is slow.
func TestReplayDuringStall(t *testing.T) {
	commithook.Install()
	ctx := context.Background()
	cfg := testConfig(fixedClock())
	cfg.PurchaseTimeout = 500 * time.Millisecond
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 10, 2))
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 2})

	// Another buyer's batch stalls in its commit, holding the sale.
	stalled, let := make(chan struct{}), make(chan struct{})
	commithook.OnNext(func() { close(stalled); <-let })
	released := false
	release := func() {
		if !released {
			released = true
			close(let)
		}
	}
	defer release()
	other := make(chan error, 1)
	go func() {
		_, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u2", Quantity: 1}})
		other <- err
	}()
	<-stalled

	for _, c := range []struct {
		name string
		p    surge.Purchase
		want surge.Code
	}{
		{"replay", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 2}, surge.CodeReserved},
		{"key reused with another quantity", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1}, surge.CodeIdempotencyMismatch},
	} {
		began := time.Now()
		out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: c.p})
		if err != nil || out.Code != c.want {
			t.Errorf("%s during a stalled commit: %+v, %v after %v; want %s from memory", c.name, out, err, time.Since(began).Round(time.Millisecond), c.want)
			continue
		}
		if c.want == surge.CodeReserved && (!out.Replay || out.Order.ID != first.ID) {
			t.Errorf("%s: %+v, want the replay of %s", c.name, out, first.ID)
		}
	}
	release()
	// It may have outlived its own PurchaseTimeout meanwhile.
	if err := <-other; err != nil && !errors.Is(err, ErrTimeout) {
		t.Errorf("the stalled purchase: %v", err)
	}
}
