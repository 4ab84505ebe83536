package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/commithook"
	"github.com/surgehq/surge/sqlite"
)

// TestExpiredUnitsSellAtOnce: an expiry pass that ends more holds of a
// sale than one commit takes (MaxCommitRows) commits them in chunks, and
// the units of a chunk on disk are sold again at once. They came back to
// the pipeline only at the end of the sale's whole pass, which held the
// sale meanwhile: while a later chunk committed, a buyer was refused
// sold_out (409) for units that were back in stock.
func TestExpiredUnitsSellAtOnce(t *testing.T) {
	commithook.Install()
	clk := fixedClock()
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{NoExpiry: true, MaxCommitRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := openEngine(t, st, testConfig(clk))
	mustCreate(t, e, input("s", 4, 1))
	for i := range 4 {
		mustReserve(t, e, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})
	}
	clk.Advance(time.Duration(surge.DefaultHold+1) * time.Second)

	// The pass's first chunk commits; its second stalls.
	stalled, let := make(chan struct{}), make(chan struct{})
	commithook.OnNext(func() { commithook.OnNext(func() { close(stalled); <-let }) })
	released := false
	release := func() {
		if !released {
			released = true
			close(let)
		}
	}
	defer release()
	passed := make(chan struct{})
	go func() {
		defer close(passed)
		e.ExpireNow()
	}()
	select {
	case <-stalled:
	case <-passed:
		t.Fatal("the expiry pass ended without a second commit")
	}

	// The first chunk's 2 units are on disk: the pipeline sells them.
	deadline := time.Now().Add(5 * time.Second)
	for remaining(t, e, "s") != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := remaining(t, e, "s")
	bought := make(chan error, 1)
	go func() {
		out, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "late", Quantity: 1}})
		if err == nil && out.Code != surge.CodeReserved {
			err = fmt.Errorf("answered %s", out.Code)
		}
		bought <- err
	}()
	// Its answer may wait for the stalled commit, never for a refusal.
	var early error
	select {
	case early = <-bought:
	case <-time.After(200 * time.Millisecond):
	}
	release()
	<-passed
	if got != 2 {
		t.Errorf("remaining while the pass's second chunk commits: %d, want 2 (its first chunk's units)", got)
	}
	if early == nil {
		early = <-bought
	}
	if early != nil {
		t.Errorf("purchase while the pass's second chunk commits: %v, want reserved", early)
	}
	if got := remaining(t, e, "s"); got != 3 {
		t.Errorf("remaining after the pass: %d, want 3", got)
	}
}
