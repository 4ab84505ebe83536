package cluster_test

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
)

// Many tests' nodes have short call timeouts, meant for the step under
// test (the leader's rounds, a stalled statement): a setup call that
// outlasts one on a loaded machine is retried here, as a client would,
// for up to 20 s, instead of failing the test for a reason it is not
// about.

// retrySetup calls f until it returns nil, retrying a 503 for up to 20 s.
// After a 503 (whose try may have committed unheard) landed(err) may
// accept an answer saying so (a sale that exists); landed may be nil.
func retrySetup(t testing.TB, what string, f func() error, landed func(error) bool) {
	t.Helper()
	unheard := false
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		err := f()
		if err == nil || unheard && landed != nil && landed(err) {
			return
		}
		if !surge.HasCode(err, surge.CodeUnavailable) || time.Since(start) > 20*time.Second {
			t.Fatalf("%s: %v", what, err)
		}
		unheard = true
	}
}

// saleExists says a creation retried after an unheard try landed.
func saleExists(err error) bool { return surge.HasCode(err, surge.CodeSaleExists) }

// createSale creates sl on s, retrying a 503.
func createSale(t testing.TB, s *cluster.Store, sl surge.Sale) {
	t.Helper()
	retrySetup(t, "CreateSale "+sl.ID, func() error { return s.CreateSale(context.Background(), sl) }, saleExists)
}

// engineSale creates a sale through e, retrying a 503, and waits until e
// lists it (a try that committed unheard is answered "exists", and e
// learns of the sale by its sync).
func engineSale(t *testing.T, e *engine.Engine, in surge.SaleInput) {
	t.Helper()
	retrySetup(t, "create sale "+*in.ID, func() error {
		_, err := e.CreateSale(context.Background(), in)
		return err
	}, saleExists)
	eventually(t, 20*time.Second, "the engine lists the sale it created", func() error {
		_, err := e.Sale(*in.ID)
		return err
	})
}

// enginePurchase makes req through e, retrying a 503 with the same
// idempotency key (a try that committed unheard replays), and fails the
// test unless it is reserved.
func enginePurchase(t *testing.T, e *engine.Engine, req engine.PurchaseRequest) surge.Outcome {
	t.Helper()
	if req.Purchase.IdempotencyKey == "" {
		t.Fatal("a retried setup purchase needs an idempotency key")
	}
	var out surge.Outcome
	retrySetup(t, "purchase", func() error {
		var err error
		out, err = e.Purchase(context.Background(), req)
		return cmp.Or(err, out.Err)
	}, nil)
	if out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v", out)
	}
	return out
}
