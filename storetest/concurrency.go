package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// call is one Reserve made by the concurrency test, kept to check later.
type call struct {
	sale  string
	batch []surge.Purchase
	out   []surge.Outcome
	rem   int64
}

func testConcurrency(t *testing.T, h Harness) {
	const (
		workers   = 12
		perWorker = 25
		users     = 24
	)
	e := newEnv(t, h)
	sales := []surge.Sale{
		newSale(t, "c1", 40, 3),
		newSale(t, "c2", 7, 2),
		newSale(t, "c3", 100, 1),
	}
	e.createSale(sales...)

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		calls     []call
		cancelled = map[string]bool{}
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Fixed seeds: a failure replays the same workload.
			rng := rand.New(rand.NewPCG(uint64(w), 0x5eed))
			for range perWorker {
				s := sales[rng.IntN(len(sales))]
				batch := make([]surge.Purchase, 1+rng.IntN(3))
				for i := range batch {
					p := buy(fmt.Sprintf("u%d", rng.IntN(users)), 1+rng.Int64N(s.PerUserLimit))
					if rng.IntN(2) == 0 {
						p.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(3))
					}
					batch[i] = p
				}
				// Fast-path reads race with commits; they must not trip
				// the race detector or block.
				e.s.LookupKey(s.ID, batch[0].UserID, "k0")
				out, rem, err := e.s.Reserve(e.ctx, s.ID, batch, surge.At(at(0)))
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				var cancel []string
				for _, o := range out {
					if o.Code == surge.CodeReserved && !o.Replay && rng.IntN(3) == 0 {
						cancel = append(cancel, o.Order.ID)
					}
				}
				// Only the creator cancels, so a cancel cannot be refused.
				for _, id := range cancel {
					if _, err := e.s.Cancel(e.ctx, id, at(time.Second)); err != nil {
						t.Errorf("Cancel(%s): %v", id, err)
					}
				}
				mu.Lock()
				calls = append(calls, call{s.ID, batch, out, rem})
				for _, id := range cancel {
					cancelled[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// first answers of every order, from the calls that created them.
	first := map[string]surge.Order{}
	for _, c := range calls {
		if len(c.out) != len(c.batch) {
			t.Fatalf("Reserve(%s): %d outcomes for %d purchases", c.sale, len(c.out), len(c.batch))
		}
		for i, o := range c.out {
			if o.Code != surge.CodeReserved || o.Replay {
				continue
			}
			if _, dup := first[o.Order.ID]; dup {
				t.Errorf("order %s created twice", o.Order.ID)
			}
			first[o.Order.ID] = o.Order
			p := c.batch[i]
			if o.Order.SaleID != c.sale || o.Order.UserID != p.UserID || o.Order.Quantity != p.Quantity || o.Order.IdempotencyKey != p.IdempotencyKey {
				t.Errorf("order %+v does not answer %+v", o.Order, p)
			}
		}
	}
	// The first order of every (sale, user, key), to check mismatches.
	byKey := map[[3]string]surge.Order{}
	for _, f := range first {
		if f.IdempotencyKey != "" {
			byKey[[3]string{f.SaleID, f.UserID, f.IdempotencyKey}] = f
		}
	}
	codes := map[string]int{}
	for _, c := range calls {
		for i, o := range c.out {
			p := c.batch[i]
			codes[string(o.Code)]++
			if o.Replay {
				codes["replay"]++
			}
			switch {
			case o.Replay:
				f, ok := first[o.Order.ID]
				if !ok {
					t.Errorf("replay of %+v answers order %s that no call created", p, o.Order.ID)
				} else if d := orderDiff(o.Order, f); d != "" || p.IdempotencyKey == "" || f.UserID != p.UserID || f.IdempotencyKey != p.IdempotencyKey {
					t.Errorf("replay of %+v is not the first answer %+v:\n%s", p, f, d)
				} else if f.Quantity != p.Quantity {
					t.Errorf("replay of %+v answers an order of another quantity %+v", p, f)
				}
			case o.Code == surge.CodeIdempotencyMismatch:
				if f, ok := byKey[[3]string{c.sale, p.UserID, p.IdempotencyKey}]; !ok || p.IdempotencyKey == "" || f.Quantity == p.Quantity {
					t.Errorf("%+v refused as idempotency_mismatch; the key's first order: %+v (found %v)", p, f, ok)
				}
			case o.Code == surge.CodeSoldOut:
				if o.Remaining >= p.Quantity || o.Remaining < 0 {
					t.Errorf("sold_out for %d units with %d remaining", p.Quantity, o.Remaining)
				}
			}
		}
	}

	t.Logf("outcomes: %v, cancelled %d", codes, len(cancelled))
	// The workload must reach the contended cases, or the checks below
	// prove little.
	for _, k := range []string{string(surge.CodeSoldOut), string(surge.CodeLimitReached), "replay"} {
		if codes[k] == 0 {
			t.Errorf("no %s outcome under concurrency: the workload is too gentle", k)
		}
	}

	check := func(t *testing.T) {
		e := e.on(t)
		seen := map[string]bool{}
		for _, s := range sales {
			var live int64
			perUser := map[string]int64{}
			keys := map[[2]string]string{}
			for _, o := range e.orders(s.ID) {
				if seen[o.ID] {
					t.Errorf("order %s listed twice", o.ID)
					continue
				}
				seen[o.ID] = true
				f, ok := first[o.ID]
				if !ok {
					t.Errorf("order %s in the store was never answered", o.ID)
					continue
				}
				want := surge.OrderReserved
				if cancelled[o.ID] {
					want = surge.OrderCancelled
				}
				if d := orderDiff(o, withStatus(f, want)); d != "" {
					t.Errorf("stored order %s:\n%s", o.ID, d)
				}
				if o.IdempotencyKey != "" {
					k := [2]string{o.UserID, o.IdempotencyKey}
					if other, dup := keys[k]; dup {
						t.Errorf("orders %s and %s share sale %s, user %s, key %s", other, o.ID, s.ID, k[0], k[1])
					}
					keys[k] = o.ID
					if o.Status.Live() {
						e.wantKey(s.ID, o.UserID, o.IdempotencyKey, f)
					} else {
						e.wantKeyOrDisk(s.ID, o.UserID, o.IdempotencyKey, f)
					}
				}
				if o.Status.Live() {
					live += o.Quantity
					perUser[o.UserID] += o.Quantity
				}
			}
			if live > s.Stock {
				t.Errorf("sale %s: %d live units over a stock of %d", s.ID, live, s.Stock)
			}
			for u, n := range perUser {
				if n > s.PerUserLimit {
					t.Errorf("sale %s: user %s holds %d units over the limit %d", s.ID, u, n, s.PerUserLimit)
				}
			}
			e.wantRemaining(s.ID, s.Stock-live)
		}
		// Every order a call created is listed: a count would let a lost
		// order hide behind one listed twice.
		for id, f := range first {
			if !seen[id] {
				t.Errorf("order %s (sale %s, user %s, %d units) was answered but is never listed", id, f.SaleID, f.UserID, f.Quantity)
			}
		}
	}
	t.Run("Invariants", check)
	e.reopen()
	t.Run("InvariantsAfterReopen", check)
}
