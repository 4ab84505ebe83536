package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// SteerSpike is a crowd buying one sale while an operator steers it:
// stock lowered to near what is sold and raised again, the sale paused and
// resumed, the per-user limit lowered. It drives the pipeline (engines over
// a backend, one or several nodes) through the functions it is given, so
// embedded and cluster mode run the same workload and the same checks.
type SteerSpike struct {
	SaleID string
	Stock  int64 // the sale's stock when the spike starts
	Limit  int64 // its per-user limit then: 3 (the spike lowers it to 2)
	Nodes  int
	// Buy runs one purchase on a node (its engine's Purchase).
	Buy func(ctx context.Context, node int, p surge.Purchase) (surge.Outcome, error)
	// Steer changes the sale through a node (its engine's UpdateSale).
	Steer func(ctx context.Context, node int, p surge.SalePatch) error
	// Remaining reads the sale's remaining stock (to aim a lowered stock
	// just above what is sold).
	Remaining func(ctx context.Context) (int64, error)
}

// attempt is one purchase as a client saw it: when it was sent and
// answered (monotonic clock), and the answer.
type attempt struct {
	p          surge.Purchase
	sent, recv time.Time
	out        surge.Outcome
	err        error
}

// change is one operator change: sent at start, answered at end.
type change struct {
	p          surge.SalePatch
	start, end time.Time
	err        error
}

// SpikeResult is what a SteerSpike did, to be checked against the store.
type SpikeResult struct {
	spike    SteerSpike
	attempts []attempt
	changes  []change
	stop     time.Time
}

// Run fires the crowd and the operator at the sale and returns what they
// did once both are done.
func (sp SteerSpike) Run(t *testing.T) *SpikeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const buyers, users = 24, 300
	res := &SpikeResult{spike: sp}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	for b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(b), 7))
			var mine []attempt
			defer func() { mu.Lock(); res.attempts = append(res.attempts, mine...); mu.Unlock() }()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", rng.IntN(users)), IdempotencyKey: fmt.Sprintf("b%d-%d", b, i),
					Quantity: 1 + rng.Int64N(2)}
				// A key is retried, on any node, while it answers 503, and
				// now and then once more after its answer: a retry must
				// never buy twice.
				for try := 0; try < 5; try++ {
					a := attempt{p: p, sent: time.Now()}
					a.out, a.err = sp.Buy(ctx, rng.IntN(sp.Nodes), p)
					a.recv = time.Now()
					mine = append(mine, a)
					// A breath between purchases: the machines running the
					// tests are small and shared, and the operator must get
					// its turn on the CPU.
					time.Sleep(time.Millisecond)
					if surge.ErrorCode(a.err) != surge.CodeUnavailable && surge.ErrorCode(a.err) != surge.CodeOverloaded && rng.IntN(10) > 0 {
						break
					}
				}
			}
		}()
	}
	steer := func(node int, p surge.SalePatch) error {
		c := change{p: p, start: time.Now()}
		c.err = sp.Steer(ctx, node, p)
		c.end = time.Now()
		res.changes = append(res.changes, c)
		return c.err
	}
	// lower aims the stock a few units above what is sold; a refusal
	// (sold grew meanwhile) is recorded and retried higher.
	lower := func(node int) {
		for margin := int64(3); margin < 1000; margin *= 3 {
			rem, err := sp.Remaining(ctx)
			if err != nil {
				t.Errorf("remaining: %v", err)
				return
			}
			stock := res.stock() - rem + margin
			if err := steer(node, surge.SalePatch{Stock: &stock}); err == nil || !surge.HasCode(err, surge.CodeStockBelowSold) {
				return
			}
		}
	}
	pause := func(node int) {
		_ = steer(node, surge.SalePatch{Paused: new(true)})
		time.Sleep(150 * time.Millisecond)
		_ = steer((node+1)%sp.Nodes, surge.SalePatch{Paused: new(false)})
	}
	beat := func() { time.Sleep(120 * time.Millisecond) }
	beat()
	lower(0)
	beat()
	pause(0)
	beat()
	_ = steer(1%sp.Nodes, surge.SalePatch{Stock: new(res.stock() + 150)})
	beat()
	_ = steer(0, surge.SalePatch{PerUserLimit: new(sp.Limit - 1)})
	beat()
	pause(1 % sp.Nodes)
	beat()
	lower(1 % sp.Nodes)
	beat()
	_ = steer(0, surge.SalePatch{Stock: new(res.stock() + 100)})
	beat()
	close(done)
	wg.Wait()
	res.stop = time.Now()
	for _, c := range res.changes {
		if c.err != nil && !surge.HasCode(c.err, surge.CodeStockBelowSold) {
			t.Errorf("change %+v: %v", c.p, c.err)
		}
	}
	return res
}

// stock is the stock the last accepted change set (or the starting one).
func (r *SpikeResult) stock() int64 {
	for _, c := range slices.Backward(r.changes) {
		if c.err == nil && c.p.Stock != nil {
			return *c.p.Stock
		}
	}
	return r.spike.Stock
}

// Verify checks the guarantees against the store's orders, in creation
// (commit) order: every 201 is there, as answered; no key bought twice;
// the units sold never exceed the stock in force, the final stock above
// all; no buyer exceeds the limit in force when it bought; nothing was
// reserved while the sale was paused. A purchase counts as made under a
// change when it was sent after the change was answered, and as made
// before the next one when it was answered before that was sent.
func (r *SpikeResult) Verify(t *testing.T, store surge.Store) {
	t.Helper()
	var orders []surge.Order
	if err := store.Orders(t.Context(), r.spike.SaleID, func(o surge.Order) error {
		orders = append(orders, o)
		return nil
	}); err != nil {
		t.Fatalf("orders: %v", err)
	}
	byID := make(map[string]surge.Order, len(orders))
	keys := make(map[[2]string]string)
	for _, o := range orders {
		byID[o.ID] = o
		k := [2]string{o.UserID, o.IdempotencyKey}
		if first, dup := keys[k]; dup {
			t.Errorf("key %v bought twice: orders %s and %s", k, first, o.ID)
		}
		keys[k] = o.ID
		if o.Status != surge.OrderReserved {
			t.Errorf("order %s is %s; the spike neither pays nor cancels", o.ID, o.Status)
		}
	}
	// Every 201 is durable, as answered; remember when each new order's
	// purchase was sent and answered.
	type when struct{ sent, recv time.Time }
	made := make(map[string]when)
	var reserved, paused, soldOut, unavailable int
	for _, a := range r.attempts {
		switch {
		case a.err == nil && a.out.Code == surge.CodeReserved:
			o, ok := byID[a.out.Order.ID]
			if !ok || o.UserID != a.p.UserID || o.Quantity != a.p.Quantity || o.IdempotencyKey != a.p.IdempotencyKey {
				t.Errorf("201 for %+v answered order %+v; the store holds %+v (%v)", a.p, a.out.Order, o, ok)
				continue
			}
			if !a.out.Replay {
				reserved++
				if w, seen := made[o.ID]; !seen || a.sent.Before(w.sent) {
					made[o.ID] = when{a.sent, a.recv}
				}
			}
		case a.err == nil && a.out.Code == surge.CodePaused:
			paused++
		case a.err == nil && a.out.Code == surge.CodeSoldOut:
			soldOut++
		case surge.ErrorCode(a.err) == surge.CodeUnavailable:
			unavailable++
		}
	}
	t.Logf("%d purchases: %d reserved, %d paused, %d sold out, %d unavailable; %d orders; %d changes",
		len(r.attempts), reserved, paused, soldOut, unavailable, len(orders), len(r.changes))
	if reserved == 0 || paused == 0 || soldOut == 0 {
		t.Errorf("the spike tested too little: %d reserved, %d paused, %d sold out", reserved, paused, soldOut)
	}
	// The windows of each change: from its answer to the next change of
	// the same kind being sent.
	type window struct {
		from, to time.Time
		value    int64
	}
	var stockW, limitW, pauseW []window
	stockW = append(stockW, window{to: r.stop, value: r.spike.Stock})
	limitW = append(limitW, window{to: r.stop, value: r.spike.Limit})
	for _, c := range r.changes {
		if c.err != nil {
			continue
		}
		if c.p.Stock != nil {
			stockW[len(stockW)-1].to = c.start
			stockW = append(stockW, window{from: c.end, to: r.stop, value: *c.p.Stock})
		}
		if c.p.PerUserLimit != nil {
			limitW[len(limitW)-1].to = c.start
			limitW = append(limitW, window{from: c.end, to: r.stop, value: *c.p.PerUserLimit})
		}
		if c.p.Paused != nil {
			if *c.p.Paused {
				pauseW = append(pauseW, window{from: c.end, to: r.stop})
			} else if len(pauseW) > 0 {
				pauseW[len(pauseW)-1].to = c.start
			}
		}
	}
	in := func(w when, ws []window) (int64, bool) {
		for _, x := range ws {
			if w.sent.After(x.from) && w.recv.Before(x.to) {
				return x.value, true
			}
		}
		return 0, false
	}
	var sold, maxStock, maxLimit int64
	for _, w := range stockW {
		maxStock = max(maxStock, w.value)
	}
	for _, w := range limitW {
		maxLimit = max(maxLimit, w.value)
	}
	held := make(map[string]int64)
	for _, o := range orders {
		sold += o.Quantity
		held[o.UserID] += o.Quantity
		if sold > maxStock {
			t.Errorf("order %s: %d units sold, over every stock the sale had (at most %d)", o.ID, sold, maxStock)
		}
		if held[o.UserID] > maxLimit {
			t.Errorf("order %s: buyer %s holds %d units, over every limit the sale had (at most %d)", o.ID, o.UserID, held[o.UserID], maxLimit)
		}
		w, answered := made[o.ID]
		if !answered {
			continue
		}
		if stock, ok := in(w, stockW); ok && sold > stock {
			t.Errorf("order %s: %d units sold while the stock was %d", o.ID, sold, stock)
		}
		if limit, ok := in(w, limitW); ok && held[o.UserID] > limit {
			t.Errorf("order %s: buyer %s holds %d units under a limit of %d", o.ID, o.UserID, held[o.UserID], limit)
		}
		if _, ok := in(w, pauseW); ok {
			t.Errorf("order %s reserved while the sale was paused (sent %v, answered %v)", o.ID, w.sent, w.recv)
		}
	}
	final := r.stock()
	if sold > final {
		t.Errorf("%d units sold, over the final stock of %d", sold, final)
	}
	// The store's count of what is left must agree with its orders: one
	// that drifted up sells units the sale does not have next.
	if rem, err := store.Remaining(t.Context(), r.spike.SaleID); err != nil {
		t.Errorf("remaining: %v", err)
	} else if rem != max(final-sold, 0) {
		t.Errorf("remaining %d, but the final stock %d less the %d units sold is %d", rem, final, sold, max(final-sold, 0))
	}
}
