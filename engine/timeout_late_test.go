package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestTimedOutPurchaseCommitsLater: a purchase answered 503 "timed out"
// was already in a batch at the store, which commits it afterwards (the
// embedded store, stalled until the answer went out). The retry, sent
// while the first is still at the store or once it committed, must not buy
// twice: a keyed one gets the first order back, a keyless one runs into
// the per-user limit. The keyless buyer was told to "retry shortly", as if
// nothing had been bought: the answer now says the purchase may still
// commit.
func TestTimedOutPurchaseCommitsLater(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key       string
		retryLate bool // the retry goes once the first committed, else while it is stuck
	}{
		{"keyed, retry while stuck", "k1", false},
		{"keyed, retry after", "k1", true},
		{"keyless, retry while stuck", "", false},
		{"keyless, retry after", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(fixedClock())
			// Long enough for the retry's own batch, which waits for the
			// first's commit, on a loaded machine.
			cfg.PurchaseTimeout = 2 * time.Second
			e, st, _, g := stalledEngine(t, cfg)
			mustCreate(t, e, input("s", 10, 1))
			p := surge.Purchase{UserID: "alice", IdempotencyKey: tc.key, Quantity: 1}
			first := goPurchase(ctx, e, "s", p)
			<-g.entered // its batch is at the store
			a := <-first
			if !errors.Is(a.err, ErrTimeout) {
				t.Fatalf("first purchase: %+v, %v; want ErrTimeout", a.out, a.err)
			}
			// A keyless buyer is told the truth: it may have bought, and a
			// retry is a new purchase. (A keyed one is told to retry with
			// its key, which returns the first order if it committed.)
			if msg := a.err.Error(); tc.key == "" && !strings.Contains(msg, "may still commit") {
				t.Errorf("first purchase answered %q, which does not say that it may still commit (it does, below)", msg)
			}
			var retry <-chan answer
			if !tc.retryLate {
				retry = goPurchase(ctx, e, "s", surge.Purchase{UserID: "alice", IdempotencyKey: tc.key, Quantity: 1})
				waitFor(t, "the retry to queue", func() bool { return inboxLen(e, "s") == 1 })
			}
			g.open()
			var orders []surge.Order
			waitFor(t, "the first purchase to commit", func() bool {
				orders = orders[:0]
				_ = st.Orders(ctx, "s", func(o surge.Order) error { orders = append(orders, o); return nil })
				return len(orders) == 1
			})
			if tc.retryLate {
				retry = goPurchase(ctx, e, "s", surge.Purchase{UserID: "alice", IdempotencyKey: tc.key, Quantity: 1})
			}
			r := <-retry
			if tc.key != "" {
				if r.err != nil || r.out.Code != surge.CodeReserved || r.out.Order.ID != orders[0].ID {
					t.Errorf("keyed retry: %+v, %v; want the first order %s back", r.out, r.err, orders[0].ID)
				}
			} else if r.err != nil || r.out.Code != surge.CodeLimitReached {
				t.Errorf("keyless retry: %+v, %v; want limit_reached", r.out, r.err)
			}
			n := 0
			_ = st.Orders(ctx, "s", func(surge.Order) error { n++; return nil })
			if n != 1 {
				t.Errorf("%d orders, want 1", n)
			}
		})
	}
}
