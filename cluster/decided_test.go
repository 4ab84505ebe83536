package cluster_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
)

// doorStore is the real cluster store whose first batch waits at its door
// until let: the engine has read the batch's time, and Redis has not
// decided it yet (a wait for a Redis connection, a PostgreSQL read of the
// sale, a pause of the process).
type doorStore struct {
	*cluster.Store
	once         sync.Once
	reached, let chan struct{}
}

func (d *doorStore) door() {
	first := false
	d.once.Do(func() { first = true })
	if first {
		close(d.reached)
		<-d.let
	}
}

func (d *doorStore) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	d.door()
	return d.Store.Reserve(ctx, saleID, batch, clock)
}

// TestEndNowRefusesBatchAtTheDoor (cluster): a batch that Redis decides
// after an operator ended the sale ("ends_at":"now", answered 200 with
// the sale ended, its new epoch installed) is refused ended. Its time was
// read by the engine before it reached the store, and Redis decided it at
// that instant against the new epoch's end: it reserved, and committed
// under the new epoch, after the end was answered.
func TestEndNowRefusesBatchAtTheDoor(t *testing.T) {
	ns := namespace(t)
	clock := testclock.New(time.Now().UTC().Truncate(time.Millisecond))
	s := &doorStore{Store: openStore(t, ns, cluster.Config{Interval: 200 * time.Millisecond}),
		reached: make(chan struct{}), let: make(chan struct{})}
	e, err := engine.Open(context.Background(), s, engine.Config{Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(s.let) }) }
	t.Cleanup(func() {
		release()
		e.Close()
		s.Close()
	})
	ctx := t.Context()
	id, name, stock := "door", "Door", int64(10)
	if _, err := e.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		out surge.Outcome
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		out, err := e.Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: "late", IdempotencyKey: "k-late", Quantity: 1}})
		ch <- answer{out, err}
	}()
	select {
	case <-s.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the purchase's batch never reached the store")
	}
	clock.Advance(time.Second)
	st, err := e.UpdateSale(ctx, id, surge.SalePatch{EndNow: true})
	if err != nil || st.Status != surge.SaleEnded {
		t.Fatalf("end now: %+v, %v; want the sale ended", st, err)
	}
	release()
	a := <-ch
	if a.err != nil || a.out.Code != surge.CodeEnded {
		t.Errorf("a purchase decided after the sale was ended at %s (answered 200 ended): (%+v, %v), want 409 ended",
			surge.FormatTime(st.EndsAt), a.out, a.err)
	}
	if rem, err := s.Remaining(ctx, id); err != nil || rem != stock {
		t.Errorf("remaining (%d, %v) after the sale ended with %d left, want %d", rem, err, stock, stock)
	}
}
