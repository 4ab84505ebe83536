package engine

import (
	"context"
	"testing"

	"github.com/surgehq/surge"
)

// TestChangeOfCallerGoneStartsNothing: an order change (a cancel, a
// payment by hand) whose caller is already gone, its context done before
// the engine takes it, must start nothing at the store. It used to start
// the change and answer at once: a client that keeps calling with such a
// context queued up to 1,024 changes on the sale's lock, ahead of every
// purchase and sale change of that sale (TestSteerWithCancelsKeepsFiguresExact
// hung so under load once its context's deadline passed).
func TestChangeOfCallerGoneStartsNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(ctx context.Context, e *Engine, id string) error
	}{
		{"cancel", func(ctx context.Context, e *Engine, id string) error { _, err := e.Cancel(ctx, id); return err }},
		{"pay", func(ctx context.Context, e *Engine, id string) error { _, err := e.Pay(ctx, id); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			e := openEngine(t, st, testConfig(fixedClock()))
			mustCreate(t, e, input("s", 10, 1))
			o := mustReserve(t, e, "s", surge.Purchase{UserID: "u", Quantity: 1})

			gone, cancel := context.WithCancel(context.Background())
			cancel()
			if err := c.change(gone, e, o.ID); !surge.HasCode(err, surge.CodeUnavailable) {
				t.Errorf("%s with its caller gone: %v, want 503 unavailable", c.name, err)
			}
			// Close waits for every change started.
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := st.Order(context.Background(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != surge.OrderReserved {
				t.Errorf("after a %s whose caller was gone before it started, the order is %s; want it still reserved (nothing started)",
					c.name, got.Status)
			}
		})
	}
}
