package cluster_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
)

// TestReplayAfterTurn (cluster): a purchase that committed in the buyer's
// waiting-room turn (the queue in the real Redis, the order in Redis and
// PostgreSQL), replayed with the same Idempotency-Key and ticket once the
// turn had passed, was refused not_admitted ("your turn to buy expired")
// instead of answering the first order. Now the node that bought answers
// the replay; a new key with that ticket still buys nothing.
func TestReplayAfterTurn(t *testing.T) {
	ns := namespace(t)
	clk := testclock.New(time.Now().Truncate(time.Second))
	engines, rooms := roomNodes(t, ns, clk, []byte("0123456789abcdef0123456789abcdef"))
	ctx := t.Context()
	id, name, stock, start := "replay-room", "Replay room", int64(5), clk.Now()
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	st, err := engines[0].Sale(id)
	if err != nil {
		t.Fatal(err)
	}
	place, _, err := rooms[0].Join(ctx, &st.Sale, "alice")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // admitted
	buy := func(key string) (surge.Outcome, error) {
		return engines[0].Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: "alice", Quantity: 1, IdempotencyKey: key}, Tickets: []string{place.Ticket}})
	}
	first, err := buy("k1")
	if err != nil || first.Code != surge.CodeReserved {
		t.Fatalf("the purchase in the turn: %+v, %v", first, err)
	}
	clk.Advance(time.Minute) // the turn has passed
	again, err := buy("k1")
	if err != nil || !again.Replay || again.Order.ID != first.Order.ID {
		t.Fatalf("the replay after the turn: %+v, %v; want the first order %s, replayed", again, err, first.Order.ID)
	}
	if out, err := buy("k2"); !surge.HasCode(err, surge.CodeNotAdmitted) {
		t.Fatalf("a new key after the turn: %+v, %v; want not_admitted", out, err)
	}
	if st, err := engines[0].Sale(id); err != nil || st.Remaining != 4 {
		t.Fatalf("remaining = %d, %v; want 4: one purchase", st.Remaining, err)
	}
}
