package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/storetest"
)

// hookStore forwards surge.Steerer to the store it wraps (a *sqlite.Store
// in these tests), so the engine can steer through it.
func (h *hookStore) UpdateSale(ctx context.Context, id string, p surge.SalePatch, clock func() time.Time) (surge.Sale, error) {
	return h.Store.(surge.Steerer).UpdateSale(ctx, id, p, clock)
}

func (h *hookStore) Sale(ctx context.Context, id string) (surge.Sale, error) {
	return h.Store.(surge.Steerer).Sale(ctx, id)
}

// TestPausedFastPath: a paused sale answers purchases paused on the fast
// path, with no store call and no allocation (one, the key lookup, with a
// key); its status is paused; resuming restores what the clock and stock
// say; a known key still replays.
func TestPausedFastPath(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	ctx := context.Background()
	mustCreate(t, e, input("s", 10, 2))
	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1})

	st, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true)})
	if err != nil || st.Status != surge.SalePaused || !st.Paused {
		t.Fatalf("pause: %+v, %v", st, err)
	}
	calls := hs.reserves.Load()
	for _, c := range []struct {
		name string
		p    surge.Purchase
		max  float64
	}{
		{"no key", surge.Purchase{UserID: "u2", Quantity: 1}, 0},
		{"key", surge.Purchase{UserID: "u2", IdempotencyKey: "0123456789abcdef", Quantity: 1}, 0},
	} {
		var bad atomic.Int64
		allocs := testing.AllocsPerRun(1000, func() {
			out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: c.p})
			if err != nil || out.Code != surge.CodePaused {
				bad.Add(1)
			}
		})
		if bad.Load() != 0 {
			t.Fatalf("%s: %d purchases of a paused sale were not answered paused", c.name, bad.Load())
		}
		if allocs > c.max {
			t.Errorf("%s: %.1f allocations per paused purchase, want at most %.0f", c.name, allocs, c.max)
		}
	}
	out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1})
	if !out.Replay || out.Order.ID != first.ID {
		t.Errorf("a known key of a paused sale: %+v, want the replay of %s", out, first.ID)
	}
	if n := hs.reserves.Load() - calls; n != 0 {
		t.Errorf("purchases of a paused sale made %d Reserve calls, want 0", n)
	}

	if st, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false)}); err != nil || st.Status != surge.SaleLive {
		t.Fatalf("resume: %+v, %v", st, err)
	}
	mustReserve(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 1})
	// Resuming restores what the stock and the clock say: sold out, ended.
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true), Stock: new(int64(2))}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false)}); st.Status != surge.SaleSoldOut {
		t.Errorf("resumed with no stock left: status %s, want sold_out", st.Status)
	}
	end := clk.Now().Add(time.Minute)
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(true), Stock: new(int64(5)), EndsAt: &end}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Sale("s"); st.Status != surge.SalePaused || st.Remaining != 3 {
		t.Errorf("paused with 3 left: %+v", st)
	}
	clk.Advance(2 * time.Minute)
	if st, _ := e.Sale("s"); st.Status != surge.SaleEnded {
		t.Errorf("paused past its end: status %s, want ended", st.Status)
	}
	// A key that bought more than a limit lowered since still replays.
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{Paused: new(false), EndsAt: new(time.Time{}), Stock: new(int64(10))}); err != nil {
		t.Fatal(err)
	}
	two := mustReserve(t, e, "s", surge.Purchase{UserID: "u3", IdempotencyKey: "k3", Quantity: 2})
	if _, err := e.UpdateSale(ctx, "s", surge.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u3", IdempotencyKey: "k3", Quantity: 2}); !out.Replay || out.Order.ID != two.ID {
		t.Errorf("the replay of 2 units under a limit lowered to 1: %+v, want the replay of %s", out, two.ID)
	}
	if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u3", IdempotencyKey: "k4", Quantity: 2}}); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("a new key asking 2 units under a limit of 1: %v, want invalid_request", err)
	}
	if _, err := e.UpdateSale(ctx, "nope", surge.SalePatch{Paused: new(true)}); !surge.HasCode(err, surge.CodeSaleNotFound) {
		t.Errorf("steering an unknown sale: %v", err)
	}
}

// TestSteerUnderSpike (embedded): a crowd buys while the stock goes down
// to near what is sold and up again, the sale is paused and resumed and
// its limit lowered; the guarantees hold at every point (storetest's
// SteerSpike.Verify), also on the store reopened from disk afterwards.
func TestSteerUnderSpike(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	cfg := testConfig(&clock{})
	cfg.MaxBatch = 32
	e, err := Open(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := input("spike", 150, 3)
	in.HoldSeconds = ptr(int64(3600))
	mustCreate(t, e, in)
	res := storetest.SteerSpike{
		SaleID: "spike", Stock: 150, Limit: 3, Nodes: 1,
		Buy: func(ctx context.Context, _ int, p surge.Purchase) (surge.Outcome, error) {
			return e.Purchase(ctx, PurchaseRequest{SaleID: "spike", Purchase: p})
		},
		Steer: func(ctx context.Context, _ int, p surge.SalePatch) error {
			_, err := e.UpdateSale(ctx, "spike", p)
			return err
		},
		Remaining: func(ctx context.Context) (int64, error) { return st.Remaining(ctx, "spike") },
	}.Run(t)
	res.Verify(t, st)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again := openStore(t, dir)
	res.Verify(t, again)
}

// TestSteerWithCancelsKeepsFiguresExact (embedded): buyers, cancellers and
// an operator (stock down to what is sold and up, limit down and up, end
// moved to now and removed, pause, hold) race; afterwards the remaining
// stock the engine and the store show equals the stock less the units of
// reserved and paid orders in the export, no buyer holds more than the
// largest limit, and the store reopened from disk agrees.
func TestSteerWithCancelsKeepsFiguresExact(t *testing.T) {
	for _, c := range []struct {
		name string
		opts sqlite.Options
		hold int64
	}{
		{"no expiry", sqlite.Options{NoExpiry: true}, 600},
		{"expiring holds, ledger image", sqlite.Options{ImageMin: 1}, 1},
	} {
		t.Run(c.name, func(t *testing.T) { steerWithCancels(t, c.opts, c.hold) })
	}
}

func steerWithCancels(t *testing.T, opts sqlite.Options, holdMin int64) {
	dir := t.TempDir()
	open := func() *sqlite.Store {
		st, err := sqlite.Open(context.Background(), dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	st := open()
	cfg := Config{Now: time.Now, Logger: slog.New(slog.DiscardHandler), MaxBatch: 16}
	e := openEngine(t, st, cfg)
	in := input("live", 120, 3)
	mustCreate(t, e, in)
	// A bound for a hang only: the 300 changes below, each behind the
	// sale's lock and an fsync, took up to 19 s on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var (
		mu     sync.Mutex
		orders []string
		wg     sync.WaitGroup
		done   = make(chan struct{})
	)
	for b := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(b), 1))
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", rng.IntN(60)), IdempotencyKey: fmt.Sprintf("b%d-%d", b, i), Quantity: 1 + rng.Int64N(2)}
				out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "live", Purchase: p})
				if err == nil && out.Code == surge.CodeReserved && !out.Replay {
					mu.Lock()
					orders = append(orders, out.Order.ID)
					mu.Unlock()
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	for c := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				var id string
				if len(orders) > 0 {
					id = orders[rng.IntN(len(orders))]
				}
				mu.Unlock()
				if id != "" {
					_, _ = e.Cancel(ctx, id)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	steer := func(p surge.SalePatch) {
		if _, err := e.UpdateSale(ctx, "live", p); err != nil && !surge.HasCode(err, surge.CodeStockBelowSold) && !surge.HasCode(err, surge.CodeInvalid) {
			t.Errorf("change %+v: %v", p, err)
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 300 {
		s, _ := e.Sale("live")
		switch rng.IntN(7) {
		case 0:
			rem, _ := st.Remaining(ctx, "live")
			steer(surge.SalePatch{Stock: new(max(s.Stock-rem, 3))})
		case 1:
			steer(surge.SalePatch{Stock: new(s.Stock + int64(rng.IntN(40)))})
		case 2:
			steer(surge.SalePatch{PerUserLimit: new(int64(1 + rng.IntN(3)))})
		case 3:
			steer(surge.SalePatch{EndsAt: new(time.Now())})
		case 4:
			steer(surge.SalePatch{EndsAt: new(time.Time{})})
		case 5:
			steer(surge.SalePatch{Paused: new(rng.IntN(2) == 0)})
		case 6:
			steer(surge.SalePatch{HoldSeconds: new(holdMin + int64(rng.IntN(3)))})
		}
		time.Sleep(3 * time.Millisecond)
	}
	close(done)
	wg.Wait()

	// check reads the sale, its live orders and its remaining stock, and
	// the figure the engine shows (shown; -1: none). In the expiring case
	// the expiry job goes on returning ended holds (1-3 s long) meanwhile:
	// a round that commits between two of the reads changes one figure and
	// not the other, so they are read again until they agree, once the
	// last holds are swept (20 s at most). Oversell and over-limit fail at
	// once: no expiry makes either.
	check := func(label string, store surge.Store, shown func() int64) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			sl, err := store.(surge.Steerer).Sale(ctx, "live")
			if err != nil {
				t.Fatal(err)
			}
			held := map[string]int64{}
			var live int64
			if err := store.Orders(ctx, "live", func(o surge.Order) error {
				if o.Status.Live() {
					live += o.Quantity
					held[o.UserID] += o.Quantity
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			rem, err := store.Remaining(ctx, "live")
			if err != nil {
				t.Fatal(err)
			}
			sh := shown()
			if live > sl.Stock {
				t.Fatalf("%s: oversold: %d live units, stock %d", label, live, sl.Stock)
			}
			for u, n := range held {
				if n > 3 {
					t.Fatalf("%s: buyer %s holds %d units, over every limit the sale had", label, u, n)
				}
			}
			if rem == sl.Stock-live && (sh < 0 || sh == rem) {
				t.Logf("%s: stock %d, live units %d, remaining %d (shown %d)", label, sl.Stock, live, rem, sh)
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: remaining %d (shown %d), but the stock %d less the %d units of live orders is %d",
					label, rem, sh, sl.Stock, live, sl.Stock-live)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	check("running", st, func() int64 { s, _ := e.Sale("live"); return s.Remaining })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again := open()
	check("reopened", again, func() int64 { return -1 })
}

// TestReopenDormantSaleThroughEngine: a sale that ended with only paid
// orders is left on disk at the next start (dormant); an operator removes
// its end; the limit counts the paid units and the figures are exact.
func TestReopenDormantSaleThroughEngine(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	cfg := Config{Now: time.Now, Logger: slog.New(slog.DiscardHandler)}
	e := openEngine(t, st, cfg)
	mustCreate(t, e, input("d", 10, 2))
	o := mustReserve(t, e, "d", surge.Purchase{UserID: "alice", IdempotencyKey: "a", Quantity: 2})
	if _, err := e.Pay(t.Context(), o.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateSale(t.Context(), "d", surge.SalePatch{EndsAt: new(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, dir)
	e = openEngine(t, st, cfg)
	if s, _ := e.Sale("d"); s.Remaining != 8 || s.Status != surge.SaleEnded {
		t.Fatalf("after the restart: %+v", s)
	}
	s, err := e.UpdateSale(t.Context(), "d", surge.SalePatch{EndsAt: new(time.Time{})})
	if err != nil || s.Remaining != 8 || s.Status != surge.SaleLive {
		t.Fatalf("reopened: %+v, %v", s, err)
	}
	if out := mustPurchase(t, e, "d", surge.Purchase{UserID: "alice", IdempotencyKey: "a2", Quantity: 1}); out.Code != surge.CodeLimitReached {
		t.Errorf("alice, holding 2 paid units of a limit of 2, buys again: %+v", out)
	}
	if out := mustPurchase(t, e, "d", surge.Purchase{UserID: "alice", IdempotencyKey: "a", Quantity: 2}); !out.Replay || out.Order.ID != o.ID {
		t.Errorf("alice's first key replays: %+v", out)
	}
	mustReserve(t, e, "d", surge.Purchase{UserID: "bob", IdempotencyKey: "b", Quantity: 2})
	if s, _ := e.Sale("d"); s.Remaining != 6 {
		t.Errorf("remaining %d, want 6", s.Remaining)
	}
}

// parkedRemaining is the real SQLite store whose Remaining waits on a
// gate once armed: the moment after a change of the stock is durable and
// before the engine has read the stock left.
type parkedRemaining struct {
	*sqlite.Store
	armed atomic.Bool
	g     *gate
}

func (p *parkedRemaining) Remaining(ctx context.Context, id string) (int64, error) {
	if p.armed.CompareAndSwap(true, false) {
		p.g.wait()
	}
	return p.Store.Remaining(ctx, id)
}

// A sale read while an operator changes its stock shows figures of one
// moment: never more units remaining than its stock, never "live" with no
// unit left (docs/api.md: remaining counts units not held; sold_out when
// none is left).
func TestSaleReadDuringStockChangeIsConsistent(t *testing.T) {
	for _, tc := range []struct {
		name          string
		stock, bought int64
		newStock      int64
	}{
		{"lowered, nothing sold", 10, 0, 4},
		{"lowered to the units sold", 10, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &parkedRemaining{Store: openStore(t, t.TempDir()), g: newGate()}
			e := openEngine(t, st, testConfig(fixedClock()))
			mustCreate(t, e, input("s", tc.stock, tc.newStock))
			if tc.bought > 0 {
				mustReserve(t, e, "s", surge.Purchase{UserID: "u", Quantity: tc.bought})
			}
			st.armed.Store(true)
			done := make(chan error, 1)
			go func() {
				_, err := e.UpdateSale(context.Background(), "s", surge.SalePatch{Stock: &tc.newStock})
				done <- err
			}()
			select {
			case <-st.g.entered:
			case err := <-done:
				st.g.open()
				t.Fatalf("the change made no read of the stock left: %v", err)
			}
			got, err := e.Sale("s")
			st.g.open()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantRem := tc.newStock - tc.bought
			wantStatus := surge.SaleLive
			if wantRem == 0 {
				wantStatus = surge.SaleSoldOut
			}
			if got.Stock == tc.newStock && (got.Remaining != wantRem || got.Status != wantStatus) {
				t.Fatalf("a buyer reading the sale while its stock went from %d to %d (%d sold) saw stock %d, remaining %d, status %q: "+
					"want remaining %d, status %q (figures of two moments: the new stock with the old units left)",
					tc.stock, tc.newStock, tc.bought, got.Stock, got.Remaining, got.Status, wantRem, wantStatus)
			}
			if got.Stock != tc.newStock && (got.Remaining != tc.stock-tc.bought) {
				t.Fatalf("old stock %d with remaining %d: figures of two moments", got.Stock, got.Remaining)
			}
		})
	}
}

// A pause and a resume made on another node between two polls leave the
// sale's Paused as it was, but not its pause bookkeeping, which a waiting
// room's clock reads (surge.Sale.Stopped): the node must adopt the sale.
func TestSameSaleSeesPauses(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	base := surge.Sale{ID: "s", Name: "S", Stock: 10, PerUserLimit: 1, StartsAt: start, HoldSeconds: 60}
	pause, resume := surge.SalePatch{Paused: new(true)}, surge.SalePatch{Paused: new(false)}
	paused, _ := base.Apply(pause, 0, start.Add(time.Minute))
	resumed, _ := paused.Apply(resume, 0, start.Add(2*time.Minute))
	repaused, _ := resumed.Apply(pause, 0, start.Add(3*time.Minute))
	for _, c := range []struct {
		name string
		a, b surge.Sale
		same bool
	}{
		{"the same", base, base, true},
		{"paused", base, paused, false},
		{"paused and resumed", base, resumed, false},
		{"resumed and paused again", paused, repaused, false},
	} {
		if got := sameSale(&c.a, &c.b); got != c.same {
			t.Errorf("%s: sameSale = %t, want %t", c.name, got, c.same)
		}
	}
}
