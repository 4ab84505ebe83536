package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
)

// TestReplayAtStartOnASlowerNode (cluster, two nodes whose clocks differ
// by 200 ms around a sale's start): a key that reserved on the node whose
// clock has passed starts_at is retried on the node whose clock has not.
// The retry must get the first answer (the replay), as it would after the
// sale ended, not "not_started" for a key that holds an order.
func TestReplayAtStartOnASlowerNode(t *testing.T) {
	ns := namespace(t)
	start := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
	clocks := []*testclock.Clock{testclock.New(start.Add(100 * time.Millisecond)), testclock.New(start.Add(-100 * time.Millisecond))}
	var engines []*engine.Engine
	for i := range 2 {
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i), Interval: 200 * time.Millisecond})
		e, err := engine.Open(context.Background(), s, engine.Config{Now: clocks[i].Now})
		if err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
		t.Cleanup(func() { e.Close(); s.Close() })
	}
	ctx := t.Context()
	id, name, stock := "skew", "Skew", int64(10)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })
	buy := func(node int) (surge.Outcome, error) {
		return engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "K", Quantity: 1}})
	}
	first, err := buy(0)
	if err != nil || first.Code != surge.CodeReserved {
		t.Fatalf("first purchase on node 0 (its clock 100 ms past starts_at): %+v, %v", first, err)
	}
	again, err := buy(1)
	if err != nil || again.Code != surge.CodeReserved || !again.Replay || again.Order.ID != first.Order.ID {
		t.Fatalf("the same key retried on node 1 (its clock 100 ms before starts_at): code %q, replay %v, order %q, err %v; "+
			"want the replay of order %s (the key holds it)", again.Code, again.Replay, again.Order.ID, err, first.Order.ID)
	}
}

// TestNotStartedCostsNoRateLimit (cluster): in the second before a sale's
// start, a keyed purchase of a key the node does not know goes to the
// shared store (to tell a replay from a purchase too early). Those
// attempts are still refused not_started; they must not cost the buyer's
// or the sale's rate-limit tokens, which the engine's documentation says
// fast-path rejections never do: else a buyer who clicks Buy in the last
// second (or a crowd, against the sale's limit) is refused rate_limited
// at the start itself.
func TestNotStartedCostsNoRateLimit(t *testing.T) {
	ns := namespace(t)
	start := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
	clock := testclock.New(start.Add(-500 * time.Millisecond))
	s := openStore(t, ns, cluster.Config{Interval: 200 * time.Millisecond})
	const burst = 10
	// The default per-buyer burst (serve: rate-limit-buyer-burst 10), with
	// a refill slow enough that the test's own pace does not matter.
	buyers := admission.NewKeyed(rate.Limit(0.01), burst, 1000, time.Minute)
	e, err := engine.Open(context.Background(), s, engine.Config{Now: clock.Now, BuyerRate: buyers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); s.Close() })
	ctx := t.Context()
	id, name, stock := "eager", "Eager", int64(10)
	if _, err := e.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}); err != nil {
		t.Fatal(err)
	}
	buy := func(key string) (surge.Outcome, error) {
		return e.Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: key, Quantity: 1}})
	}
	for i := range burst {
		out, err := buy(fmt.Sprintf("early-%d", i))
		if err != nil || out.Code != surge.CodeNotStarted {
			t.Fatalf("attempt %d, 500 ms before the start: %+v, %v; want not_started", i+1, out, err)
		}
	}
	clock.Set(start)
	out, err := buy("at-start")
	if err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("the buyer's purchase at the start, after %d attempts answered not_started in the second before it: %+v, %v; "+
			"want reserved (not_started refusals cost no rate-limit tokens)", burst, out, err)
	}
}

// heldStore is the real cluster store whose first Reserve of a batch
// waits for release: the sale's owner is busy, and what arrives meanwhile
// waits in the inbox, as under a crowd.
type heldStore struct {
	*cluster.Store
	once             sync.Once
	entered, release chan struct{}
}

func (h *heldStore) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.entered)
		<-h.release
	}
	return h.Store.Reserve(ctx, saleID, batch, clock)
}

// TestEarlyAttemptsThatSellPayRateLimit (cluster): in the second before a
// sale's start a keyed purchase of a key the node does not know goes to
// the shared store without costing a rate-limit token, as it is to be
// refused not_started. But it waits in the sale's inbox, and the batch
// that takes it may be decided after the start: then it sells, and the
// buyer's rate limit was never applied to a purchase that bought.
func TestEarlyAttemptsThatSellPayRateLimit(t *testing.T) {
	ns := namespace(t)
	start := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
	clock := testclock.New(start.Add(-500 * time.Millisecond))
	s := &heldStore{Store: openStore(t, ns, cluster.Config{Interval: 200 * time.Millisecond}),
		entered: make(chan struct{}), release: make(chan struct{})}
	// One purchase per buyer, then one a minute: a bot's burst is refused.
	buyers := admission.NewKeyed(rate.Limit(1.0/60), 1, 1000, time.Minute)
	e, err := engine.Open(context.Background(), s, engine.Config{Now: clock.Now, BuyerRate: buyers})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(s.release)
		}
		e.Close()
		s.Close()
	})
	ctx := t.Context()
	id, name, stock, limit := "eager-bot", "Eager bot", int64(10), int64(5)
	if _, err := e.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start}); err != nil {
		t.Fatal(err)
	}
	buy := func(user, key string) (surge.Outcome, error) {
		return e.Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: user, IdempotencyKey: key, Quantity: 1}})
	}
	// Another buyer's early attempt keeps the owner busy in the store.
	go buy("other", "o1")
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first early attempt never reached the store")
	}
	// The bot fires its burst 500 ms before the start.
	const burst = 5
	type answer struct {
		out surge.Outcome
		err error
	}
	answers := make(chan answer, burst)
	var answered atomic.Int64
	for i := range burst {
		go func() {
			out, err := buy("bot", fmt.Sprintf("bot-%d", i))
			answered.Add(1)
			answers <- answer{out, err}
		}()
	}
	eventually(t, 10*time.Second, "the bot's attempts are refused or wait in the inbox", func() error {
		for _, f := range e.SaleFigures(ctx) {
			if f.Sale == id && int64(f.Queued)+answered.Load() == burst {
				return nil
			}
		}
		return fmt.Errorf("not all %d answered or queued yet", burst)
	})
	// The start passes while they wait; the owner takes them next.
	clock.Set(start)
	close(s.release)
	released = true
	sold, limited := 0, 0
	for range burst {
		a := <-answers
		switch {
		case a.err == nil && a.out.Code == surge.CodeReserved:
			sold++
		case surge.ErrorCode(a.err) == surge.CodeRateLimited:
			limited++
		}
	}
	if sold > 1 {
		t.Fatalf("one buyer's %d purchases sent 500 ms before the start, with a per-buyer rate limit of 1 (burst 1): "+
			"%d sold and %d were refused rate_limited; want at most 1 sold: a purchase that sells must pay the rate limit",
			burst, sold, limited)
	}
}
