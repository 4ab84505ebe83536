package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/version"
)

// clock is a controllable Config.Now: base (or the wall clock when base is
// zero) plus an offset that tests advance.
type clock struct {
	base time.Time
	off  atomic.Int64
}

func (c *clock) Now() time.Time {
	t := c.base
	if t.IsZero() {
		t = time.Now()
	}
	return t.Add(time.Duration(c.off.Load()))
}

func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// fixedClock starts at a whole second so that the store's millisecond
// truncation never shifts a time.
func fixedClock() *clock {
	return &clock{base: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// hookStore decorates a store: it counts Reserve calls and the purchases
// in them, runs optional hooks around each call, and counts the orders
// Expire released. Hooks must be set before the engine uses the store.
type hookStore struct {
	surge.Store
	reserves  atomic.Int64
	purchases atomic.Int64
	expired   atomic.Int64
	// before and after run around the nth (from 1) Reserve call.
	before func(n int64)
	after  func(n int64)
}

func (h *hookStore) Reserve(ctx context.Context, saleID string, batch []surge.Purchase, clock func() time.Time) ([]surge.Outcome, int64, error) {
	n := h.reserves.Add(1)
	h.purchases.Add(int64(len(batch)))
	if h.before != nil {
		h.before(n)
	}
	out, rem, err := h.Store.Reserve(ctx, saleID, batch, clock)
	if h.after != nil {
		h.after(n)
	}
	return out, rem, err
}

func (h *hookStore) Expire(ctx context.Context, now time.Time) ([]surge.Order, error) {
	out, err := h.Store.(expirer).Expire(ctx, now)
	h.expired.Add(int64(len(out)))
	return out, err
}

// OnRelease passes the engine's registration on to the store.
func (h *hookStore) OnRelease(fn func(saleID string, expired int)) {
	if r, ok := h.Store.(surge.Releaser); ok {
		r.OnRelease(fn)
	}
}

// gate parks a store call until the test opens it.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// wait is called by the store: it announces itself and blocks until open.
func (g *gate) wait() {
	g.entered <- struct{}{}
	<-g.release
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func openStore(tb testing.TB, dir string) *sqlite.Store {
	tb.Helper()
	// No expiry job: only the tests' ExpireNow calls expire.
	st, err := sqlite.Open(context.Background(), dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func testConfig(c *clock) Config {
	return Config{
		Now:    c.Now,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// metered gives cfg a registry of its own and returns a reader of what
// it recorded in surge_batch_size: the store calls made and the purchases
// they carried.
func metered(tb testing.TB, cfg Config) (Config, func() (batches, purchases int64)) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, version.Info{Version: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Metrics = m
	return cfg, func() (int64, int64) {
		fams, err := reg.Gather()
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "surge_batch_size" {
				h := f.GetMetric()[0].GetHistogram()
				return int64(h.GetSampleCount()), int64(h.GetSampleSum())
			}
		}
		tb.Fatal("no surge_batch_size in the registry")
		return 0, 0
	}
}

// openEngine opens an engine closed at cleanup, before the store (cleanups
// run last-registered first).
func openEngine(tb testing.TB, store surge.Store, cfg Config) *Engine {
	tb.Helper()
	e, err := Open(context.Background(), store, cfg)
	if err != nil {
		tb.Fatalf("open engine: %v", err)
	}
	tb.Cleanup(func() {
		if e.Ready() {
			_ = e.Close()
		}
	})
	return e
}

func ptr[T any](v T) *T { return &v }

func input(id string, stock, limit int64) surge.SaleInput {
	return surge.SaleInput{ID: &id, Name: ptr("sale " + id), Stock: &stock, PerUserLimit: &limit}
}

func mustCreate(tb testing.TB, e *Engine, in surge.SaleInput) SaleState {
	tb.Helper()
	s, err := e.CreateSale(context.Background(), in)
	if err != nil {
		tb.Fatalf("create sale: %v", err)
	}
	return s
}

func mustPurchase(tb testing.TB, e *Engine, saleID string, p surge.Purchase) surge.Outcome {
	tb.Helper()
	out, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: saleID, Purchase: p})
	if err != nil {
		tb.Fatalf("purchase %+v: %v", p, err)
	}
	return out
}

func mustReserve(tb testing.TB, e *Engine, saleID string, p surge.Purchase) surge.Order {
	tb.Helper()
	out := mustPurchase(tb, e, saleID, p)
	if out.Code != surge.CodeReserved {
		tb.Fatalf("purchase %+v: code %q, want reserved", p, out.Code)
	}
	return out.Order
}

func remaining(tb testing.TB, e *Engine, saleID string) int64 {
	tb.Helper()
	s, err := e.Sale(saleID)
	if err != nil {
		tb.Fatalf("sale %s: %v", saleID, err)
	}
	return s.Remaining
}

// waitFor polls cond: it waits on a state the engine does not signal (how
// many requests are queued), never on elapsed time as such.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func inboxLen(e *Engine, saleID string) int { return len(e.lookup(saleID).inbox) }

type answer struct {
	out surge.Outcome
	err error
}

// goPurchase runs a purchase in its own goroutine; the answer arrives on
// the returned channel.
func goPurchase(ctx context.Context, e *Engine, saleID string, p surge.Purchase) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		out, err := e.Purchase(ctx, PurchaseRequest{SaleID: saleID, Purchase: p})
		ch <- answer{out, err}
	}()
	return ch
}

// ordersOf lists a sale's orders from the store.
func ordersOf(tb testing.TB, st surge.Store, saleID string) []surge.Order {
	tb.Helper()
	var out []surge.Order
	if err := st.Orders(context.Background(), saleID, func(o surge.Order) error {
		out = append(out, o)
		return nil
	}); err != nil {
		tb.Fatalf("orders of %s: %v", saleID, err)
	}
	return out
}

// TestConcurrentGuarantees hammers two sales with thousands of concurrent
// purchases (overlapping users, retried idempotency keys, cancels, payments
// and interleaved expiries), then checks the five guarantees against the
// database reopened from disk.
func TestConcurrentGuarantees(t *testing.T) {
	const (
		groups = 4000 // one goroutine per idempotency key
		users  = 300
		limit  = 3
		hold   = 30 * time.Second // of the test clock
	)
	saleIDs := []string{"big", "small"}
	stock := map[string]int64{"big": 500, "small": 120}

	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{}
	disk := openStore(t, dir)
	hs := &hookStore{Store: disk}
	cfg, batches := metered(t, testConfig(clk))
	cfg.InboxSize = 1 << 14 // no request may be turned away: every answer is checked
	// Nor may one time out: 4,000 purchases at once under -race on a loaded
	// 2-core machine can wait past the default 10 s for their batch.
	cfg.PurchaseTimeout = 5 * time.Minute
	e := openEngine(t, hs, cfg)
	for _, id := range saleIDs {
		in := input(id, stock[id], limit)
		in.HoldSeconds = ptr(int64(hold / time.Second))
		mustCreate(t, e, in)
	}

	type attempt struct {
		sale, user, key string
		qty             int64
		out             surge.Outcome
		err             error
	}
	var (
		results  = make([][]attempt, groups)
		settleMu sync.Mutex
		settle   []error // unexpected Cancel/Pay errors
		wg       sync.WaitGroup
		finished atomic.Int64
		// cancelled and paid count settlements that won: the expirer waits
		// for one of each between its advances, so a loaded machine, where
		// a whole tick can pass between a purchase and its settlement,
		// still ends with cancelled and paid orders beside expired ones.
		cancelled, paid atomic.Int64
		tick            = make(chan struct{}, 1)
		start           = make(chan struct{})
	)
	for g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := attempt{
				sale: saleIDs[(g/users)%len(saleIDs)], // every user buys in both sales
				user: fmt.Sprintf("u%d", g%users),
				key:  fmt.Sprintf("k%d", g),
				qty:  int64(1 + g%limit),
			}
			try := func() attempt {
				r := a
				r.out, r.err = e.Purchase(ctx, PurchaseRequest{SaleID: r.sale, Purchase: surge.Purchase{UserID: r.user, IdempotencyKey: r.key, Quantity: r.qty}})
				return r
			}
			var res []attempt
			switch g % 10 {
			case 9: // two racing attempts with one key
				twins := make([]attempt, 2)
				var tw sync.WaitGroup
				tw.Add(2)
				go func() { defer tw.Done(); twins[0] = try() }()
				go func() { defer tw.Done(); twins[1] = try() }()
				tw.Wait()
				res = append(res, twins...)
			case 7, 8: // a retry after the answer, whatever it was
				res = append(res, try())
			}
			// Like a client, retry with the same key: a rejection may turn
			// into a reservation as holds expire and orders are cancelled.
			// Groups 7-9 go on retrying after a reservation: those retries
			// must be replays.
			replayAfterReserved := g%10 >= 7
			for len(res) < 4 {
				if n := len(res); n > 0 {
					last := res[n-1]
					if last.err == nil && last.out.Code == surge.CodeReserved && !replayAfterReserved {
						break
					}
					runtime.Gosched()
				}
				res = append(res, try())
			}
			results[g] = res

			var id string
			for _, r := range res {
				if r.err == nil && r.out.Code == surge.CodeReserved {
					id = r.out.Order.ID
					break
				}
			}
			if id != "" {
				var err error
				switch {
				case g%5 == 1:
					_, err = e.Cancel(ctx, id)
					switch {
					case err == nil:
						cancelled.Add(1)
					case surge.HasCode(err, surge.CodeNotCancellable):
						err = nil // it expired first
					}
				case g%7 == 3:
					_, err = e.Pay(ctx, id)
					switch {
					case err == nil:
						paid.Add(1)
					case surge.HasCode(err, surge.CodeNotPayable):
						err = nil // it expired first
					}
				}
				if err != nil {
					settleMu.Lock()
					settle = append(settle, fmt.Errorf("settle %s: %w", id, err))
					settleMu.Unlock()
				}
			}
			if finished.Add(1)%50 == 0 {
				select {
				case tick <- struct{}{}:
				default:
				}
			}
		}()
	}

	// The expirer moves the clock past every current hold and releases
	// them, interleaved with the purchases.
	stopExpirer := make(chan struct{})
	expirerDone := make(chan struct{})
	go func() {
		defer close(expirerDone)
		var lastCancelled, lastPaid int64
		for {
			select {
			case <-stopExpirer:
				return
			case <-tick:
				if c, p := cancelled.Load(), paid.Load(); c > lastCancelled && p > lastPaid {
					lastCancelled, lastPaid = c, p
					clk.Advance(hold + time.Second)
					e.ExpireNow()
				}
			}
		}
	}()
	close(start)
	wg.Wait()
	close(stopExpirer)
	<-expirerDone

	for _, err := range settle {
		t.Error(err)
	}

	// Answers as the callers saw them.
	type ukey struct{ sale, user, key string }
	var (
		returned     = make(map[string]attempt) // order id -> an attempt that got it
		fresh        = make(map[string]int)     // order id -> non-replay answers
		counts       = make(map[surge.Code]int)
		replays      int
		keyOrder     = make(map[ukey]string)
		anyRejection bool
	)
	for g, res := range results {
		for i, r := range res {
			if r.err != nil {
				t.Errorf("group %d attempt %d: error %v", g, i, r.err)
				continue
			}
			counts[r.out.Code]++
			switch r.out.Code {
			case surge.CodeReserved:
				o := r.out.Order
				if o.SaleID != r.sale || o.UserID != r.user || o.Quantity != r.qty || o.IdempotencyKey != r.key {
					t.Errorf("group %d attempt %d: order %+v does not match the purchase %+v", g, i, o, r)
				}
				if o.Status != surge.OrderReserved {
					t.Errorf("group %d attempt %d: answered status %q, want reserved", g, i, o.Status)
				}
				// (3) one order per user and key, whatever the attempt.
				k := ukey{r.sale, r.user, r.key}
				if prev, ok := keyOrder[k]; ok && prev != o.ID {
					t.Errorf("(3) key %+v answered two orders: %s and %s", k, prev, o.ID)
				}
				keyOrder[k] = o.ID
				returned[o.ID] = r
				if r.out.Replay {
					replays++
				} else {
					fresh[o.ID]++
				}
			case surge.CodeSoldOut:
				anyRejection = true
				if r.out.Remaining >= r.qty {
					t.Errorf("group %d attempt %d: sold_out with %d remaining for %d asked", g, i, r.out.Remaining, r.qty)
				}
			case surge.CodeLimitReached:
				anyRejection = true
			default:
				t.Errorf("group %d attempt %d: unexpected code %q", g, i, r.out.Code)
			}
		}
	}
	for id, n := range fresh {
		if n != 1 {
			t.Errorf("(3) order %s answered as new %d times", id, n)
		}
	}

	// Figures before shutdown, once everything is quiet.
	engineRem := make(map[string]int64)
	memRem := make(map[string]int64)
	for _, id := range saleIDs {
		engineRem[id] = remaining(t, e, id)
		r, err := disk.Remaining(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		memRem[id] = r
	}
	nBatches, nPurchases := batches()
	if err := e.Close(); err != nil {
		t.Fatalf("close engine: %v", err)
	}
	if err := disk.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	// Everything below is read back from disk.
	again := openStore(t, dir)
	onDisk := make(map[string]surge.Order)
	statuses := make(map[surge.OrderStatus]int)
	for _, sid := range saleIDs {
		live := int64(0)
		held := make(map[string]int64)
		keys := make(map[ukey]string)
		for _, o := range ordersOf(t, again, sid) {
			onDisk[o.ID] = o
			statuses[o.Status]++
			if o.Status.Live() {
				live += o.Quantity
				held[o.UserID] += o.Quantity
			}
			if o.IdempotencyKey != "" {
				k := ukey{sid, o.UserID, o.IdempotencyKey}
				if prev, ok := keys[k]; ok {
					t.Errorf("(3) orders %s and %s share user and key %+v", prev, o.ID, k)
				}
				keys[k] = o.ID
			}
		}
		// (1) never oversold.
		if live > stock[sid] {
			t.Errorf("(1) sale %s: %d live units for a stock of %d", sid, live, stock[sid])
		}
		// (2) per-user limit.
		for u, n := range held {
			if n > limit {
				t.Errorf("(2) sale %s: user %s holds %d units, limit %d", sid, u, n, limit)
			}
		}
		// (5) remaining is the stock less live units, in every view.
		want := stock[sid] - live
		got, err := again.Remaining(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if got != want || memRem[sid] != want || engineRem[sid] != want {
			t.Errorf("(5) sale %s: stock-live = %d, reopened store %d, store before close %d, engine %d",
				sid, want, got, memRem[sid], engineRem[sid])
		}
		t.Logf("sale %s: stock %d, live %d, remaining %d", sid, stock[sid], live, want)
	}

	// (4) every reservation answered is durable as answered.
	for id, r := range returned {
		o, ok := onDisk[id]
		if !ok {
			t.Errorf("(4) order %s answered to %s is not on disk", id, r.user)
			continue
		}
		a := r.out.Order
		if o.SaleID != a.SaleID || o.UserID != a.UserID || o.Quantity != a.Quantity ||
			o.IdempotencyKey != a.IdempotencyKey || !o.CreatedAt.Equal(a.CreatedAt) || !o.ExpiresAt.Equal(a.ExpiresAt) {
			t.Errorf("(4) order %s: on disk %+v, answered %+v", id, o, a)
		}
	}
	// No caller gave up, so no order on disk may be unknown to its buyer.
	for id, o := range onDisk {
		if _, ok := returned[id]; !ok {
			t.Errorf("order %s (%s x%d) is on disk but was never answered", id, o.UserID, o.Quantity)
		}
	}

	// The engine rebuilt from disk agrees.
	e2 := openEngine(t, again, testConfig(clk))
	for _, sid := range saleIDs {
		if got, want := remaining(t, e2, sid), engineRem[sid]; got != want {
			t.Errorf("(5) sale %s: reopened engine remaining %d, want %d", sid, got, want)
		}
	}

	// The run must have exercised what it claims to test.
	t.Logf("answers %v, replays %d, orders by status %v, expired by ExpireNow %d, %d purchases in %d batches",
		counts, replays, statuses, hs.expired.Load(), nPurchases, nBatches)
	if counts[surge.CodeReserved] == 0 || !anyRejection || replays == 0 {
		t.Errorf("weak run: answers %v, replays %d", counts, replays)
	}
	if statuses[surge.OrderCancelled] == 0 || statuses[surge.OrderPaid] == 0 || statuses[surge.OrderExpired] == 0 {
		t.Errorf("weak run: orders by status %v", statuses)
	}
}

// TestFastPathSkipsStore checks that requests certain to fail never reach
// the store's Reserve, and that a replay still finds its order.
func TestFastPathSkipsStore(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	ctx := context.Background()

	mustCreate(t, e, input("gone", 2, 2))
	first := mustReserve(t, e, "gone", surge.Purchase{UserID: "u1", IdempotencyKey: "key-1", Quantity: 2})
	soon := input("soon", 10, 1)
	soon.StartsAt = ptr(clk.Now().Add(time.Hour))
	mustCreate(t, e, soon)
	over := input("over", 10, 1)
	over.StartsAt = ptr(clk.Now().Add(-2 * time.Hour))
	over.EndsAt = ptr(clk.Now().Add(-time.Hour))
	mustCreate(t, e, over)

	calls := hs.reserves.Load()
	fast := e.Stats().FastRejects
	cases := []struct {
		sale string
		p    surge.Purchase
		want surge.Code
	}{
		{"gone", surge.Purchase{UserID: "u2", Quantity: 1}, surge.CodeSoldOut},
		{"gone", surge.Purchase{UserID: "u2", IdempotencyKey: "key-2", Quantity: 2}, surge.CodeSoldOut},
		{"gone", surge.Purchase{UserID: "u1", IdempotencyKey: "other", Quantity: 1}, surge.CodeSoldOut},
		{"soon", surge.Purchase{UserID: "u2", Quantity: 1}, surge.CodeNotStarted},
		{"soon", surge.Purchase{UserID: "u2", IdempotencyKey: "key-3", Quantity: 1}, surge.CodeNotStarted},
		{"over", surge.Purchase{UserID: "u2", Quantity: 1}, surge.CodeEnded},
		{"over", surge.Purchase{UserID: "u2", IdempotencyKey: "key-4", Quantity: 1}, surge.CodeEnded},
	}
	for _, c := range cases {
		out, err := e.Purchase(ctx, PurchaseRequest{SaleID: c.sale, Purchase: c.p})
		if err != nil || out.Code != c.want {
			t.Errorf("%s %+v: got (%q, %v), want %q", c.sale, c.p, out.Code, err, c.want)
		}
		if c.want == surge.CodeSoldOut && out.Remaining != 0 {
			t.Errorf("%s %+v: sold_out with remaining %d, want 0", c.sale, c.p, out.Remaining)
		}
	}

	// A replay of the reserved key after the sell-out answers the original.
	out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "gone", Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: "key-1", Quantity: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Code != surge.CodeReserved || !out.Replay || out.Order.ID != first.ID ||
		out.Order.Quantity != first.Quantity || !out.Order.CreatedAt.Equal(first.CreatedAt) || out.Order.Status != surge.OrderReserved {
		t.Errorf("replay after sell-out: got %+v, want replay of %+v", out, first)
	}

	if n := hs.reserves.Load() - calls; n != 0 {
		t.Errorf("fast-path requests made %d Reserve calls, want 0", n)
	}
	if n := e.Stats().FastRejects - fast; n != int64(len(cases)) {
		t.Errorf("FastRejects grew by %d, want %d", n, len(cases))
	}
}

// TestSoldOutAllocs pins the cost of a sold-out decision: no allocation
// without a key, at most one (the key lookup) with one.
func TestSoldOutAllocs(t *testing.T) {
	e := openEngine(t, openStore(t, t.TempDir()), testConfig(fixedClock()))
	mustCreate(t, e, input("s", 1, 1))
	mustReserve(t, e, "s", surge.Purchase{UserID: "winner", Quantity: 1})

	ctx := context.Background()
	for _, c := range []struct {
		name string
		p    surge.Purchase
		max  float64
	}{
		{"no key", surge.Purchase{UserID: "u", Quantity: 1}, 0},
		{"key", surge.Purchase{UserID: "u", IdempotencyKey: "0123456789abcdef", Quantity: 1}, 0},
	} {
		var bad atomic.Int64
		allocs := testing.AllocsPerRun(1000, func() {
			out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: c.p})
			if err != nil || out.Code != surge.CodeSoldOut {
				bad.Add(1)
			}
		})
		if bad.Load() != 0 {
			t.Fatalf("%s: %d purchases were not sold_out", c.name, bad.Load())
		}
		if allocs > c.max {
			t.Errorf("%s: %.1f allocations per sold-out purchase, want at most %.0f", c.name, allocs, c.max)
		}
	}
}

// TestPurchaseOutcomes drives each rule through the engine.
func TestPurchaseOutcomes(t *testing.T) {
	clk := fixedClock()
	st := openStore(t, t.TempDir())
	e := openEngine(t, st, testConfig(clk))
	now := clk.Now()

	type tc struct {
		name    string
		sale    func(id string) surge.SaleInput // nil: the sale does not exist
		before  []surge.Purchase                // must all be reserved
		p       surge.Purchase
		want    surge.Code // outcome code when wantErr is ""
		wantErr surge.Code
		wantRem int64 // Outcome.Remaining for sold_out
		replay  bool  // the answer replays before[0]
	}
	plain := func(stock, limit int64) func(string) surge.SaleInput {
		return func(id string) surge.SaleInput { return input(id, stock, limit) }
	}
	cases := []tc{
		{name: "sale not found", p: surge.Purchase{UserID: "u1", Quantity: 1}, wantErr: surge.CodeSaleNotFound},
		{name: "quantity zero", sale: plain(10, 3), p: surge.Purchase{UserID: "u1", Quantity: 0}, wantErr: surge.CodeInvalid},
		{name: "quantity negative", sale: plain(10, 3), p: surge.Purchase{UserID: "u1", Quantity: -1}, wantErr: surge.CodeInvalid},
		{name: "quantity above limit", sale: plain(10, 3), p: surge.Purchase{UserID: "u1", Quantity: 4}, wantErr: surge.CodeInvalid},
		{name: "bad user id", sale: plain(10, 3), p: surge.Purchase{UserID: "no spaces", Quantity: 1}, wantErr: surge.CodeInvalid},
		{name: "empty user id", sale: plain(10, 3), p: surge.Purchase{UserID: "", Quantity: 1}, wantErr: surge.CodeInvalid},
		{name: "bad key", sale: plain(10, 3), p: surge.Purchase{UserID: "u1", IdempotencyKey: "tab\there", Quantity: 1}, wantErr: surge.CodeInvalid},
		{
			name: "not started",
			sale: func(id string) surge.SaleInput {
				in := input(id, 10, 3)
				in.StartsAt = ptr(now.Add(time.Minute))
				return in
			},
			p: surge.Purchase{UserID: "u1", Quantity: 1}, want: surge.CodeNotStarted,
		},
		{
			name: "ended",
			sale: func(id string) surge.SaleInput {
				in := input(id, 10, 3)
				in.StartsAt = ptr(now.Add(-time.Hour))
				in.EndsAt = ptr(now)
				return in
			},
			p: surge.Purchase{UserID: "u1", Quantity: 1}, want: surge.CodeEnded,
		},
		{
			name: "reserved", sale: plain(10, 3),
			p: surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 3}, want: surge.CodeReserved,
		},
		{
			name: "limit reached", sale: plain(10, 3),
			before: []surge.Purchase{{UserID: "u1", Quantity: 2}},
			p:      surge.Purchase{UserID: "u1", Quantity: 2}, want: surge.CodeLimitReached,
		},
		{
			name: "limit is per user", sale: plain(10, 3),
			before: []surge.Purchase{{UserID: "u1", Quantity: 3}},
			p:      surge.Purchase{UserID: "u2", Quantity: 3}, want: surge.CodeReserved,
		},
		{
			name: "sold out", sale: plain(3, 3),
			before: []surge.Purchase{{UserID: "u1", Quantity: 3}},
			p:      surge.Purchase{UserID: "u2", Quantity: 1}, want: surge.CodeSoldOut, wantRem: 0,
		},
		{
			name: "fewer left than asked", sale: plain(4, 3),
			before: []surge.Purchase{{UserID: "u1", Quantity: 3}},
			p:      surge.Purchase{UserID: "u2", Quantity: 2}, want: surge.CodeSoldOut, wantRem: 1,
		},
		{
			name: "last units", sale: plain(4, 3),
			before: []surge.Purchase{{UserID: "u1", Quantity: 3}},
			p:      surge.Purchase{UserID: "u2", Quantity: 1}, want: surge.CodeReserved,
		},
		{
			name: "replay while live", sale: plain(10, 3),
			before: []surge.Purchase{{UserID: "u1", IdempotencyKey: "k", Quantity: 1}},
			p:      surge.Purchase{UserID: "u1", IdempotencyKey: "k", Quantity: 1}, want: surge.CodeReserved, replay: true,
		},
		{
			name: "same key other user", sale: plain(10, 3),
			before: []surge.Purchase{{UserID: "u1", IdempotencyKey: "k", Quantity: 1}},
			p:      surge.Purchase{UserID: "u2", IdempotencyKey: "k", Quantity: 1}, want: surge.CodeReserved,
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("case-%d", i)
			var before []surge.Order
			if c.sale != nil {
				mustCreate(t, e, c.sale(id))
				for _, p := range c.before {
					before = append(before, mustReserve(t, e, id, p))
				}
			}
			held := heldBy(t, st, id, c.p.UserID)
			out, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: id, Purchase: c.p})
			if c.wantErr != "" {
				if surge.ErrorCode(err) != c.wantErr {
					t.Fatalf("got (%+v, %v), want error %q", out, err, c.wantErr)
				}
				if out != (surge.Outcome{}) {
					t.Errorf("error came with outcome %+v", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if out.Code != c.want {
				t.Fatalf("code %q, want %q (outcome %+v)", out.Code, c.want, out)
			}
			after := heldBy(t, st, id, c.p.UserID)
			switch {
			case c.want == surge.CodeReserved && c.replay:
				if !out.Replay || out.Order.ID != before[0].ID {
					t.Errorf("got %+v, want a replay of %s", out, before[0].ID)
				}
				if after != held {
					t.Errorf("replay changed the user's units from %d to %d", held, after)
				}
			case c.want == surge.CodeReserved:
				o := out.Order
				if out.Replay || o.ID == "" || o.SaleID != id || o.UserID != c.p.UserID || o.Quantity != c.p.Quantity ||
					o.IdempotencyKey != c.p.IdempotencyKey || o.Status != surge.OrderReserved ||
					!o.CreatedAt.Equal(now) || !o.ExpiresAt.Equal(now.Add(surge.DefaultHold*time.Second)) {
					t.Errorf("unexpected order %+v", o)
				}
				stored, err := e.Order(context.Background(), o.ID)
				if err != nil || stored.ID != o.ID || stored.Quantity != o.Quantity || stored.Status != surge.OrderReserved {
					t.Errorf("stored order (%+v, %v), want %+v", stored, err, o)
				}
				if after != held+c.p.Quantity {
					t.Errorf("user holds %d units, want %d", after, held+c.p.Quantity)
				}
			default:
				if out.Order != (surge.Order{}) || out.Replay {
					t.Errorf("rejection carries an order: %+v", out)
				}
				if out.Code == surge.CodeSoldOut && out.Remaining != c.wantRem {
					t.Errorf("sold_out remaining %d, want %d", out.Remaining, c.wantRem)
				}
				if after != held {
					t.Errorf("rejection changed the user's units from %d to %d", held, after)
				}
			}
		})
	}
}

func TestCancelReturnsUnits(t *testing.T) {
	clk := fixedClock()
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	e := openEngine(t, hs, testConfig(clk))
	ctx := context.Background()
	mustCreate(t, e, input("s", 3, 3))

	o := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 2})
	if got := remaining(t, e, "s"); got != 1 {
		t.Fatalf("remaining after reserving 2 of 3: %d", got)
	}
	calls := hs.reserves.Load()
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 3}); out.Code != surge.CodeSoldOut || out.Remaining != 1 {
		t.Fatalf("3 of 1 left: %+v", out)
	}
	if hs.reserves.Load() != calls {
		t.Fatal("a certain sold_out reached the store")
	}

	c, err := e.Cancel(ctx, o.ID)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if c.ID != o.ID || c.Status != surge.OrderCancelled || c.Quantity != 2 {
		t.Errorf("cancelled order %+v", c)
	}
	s, err := e.Sale("s")
	if err != nil {
		t.Fatal(err)
	}
	if s.Remaining != 3 || s.Status != surge.SaleLive {
		t.Errorf("after cancel: remaining %d status %q, want 3 live", s.Remaining, s.Status)
	}
	if got, _ := e.Order(ctx, o.ID); got.Status != surge.OrderCancelled {
		t.Errorf("stored status %q, want cancelled", got.Status)
	}
	// The hint went up, so the whole stock is for sale again.
	mustReserve(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 3})
	if got := remaining(t, e, "s"); got != 0 {
		t.Errorf("remaining %d, want 0", got)
	}
	if _, err := e.Cancel(ctx, o.ID); !surge.HasCode(err, surge.CodeNotCancellable) {
		t.Errorf("second cancel: %v, want not_cancellable", err)
	}
	if _, err := e.Cancel(ctx, "o_missing"); !surge.HasCode(err, surge.CodeOrderNotFound) {
		t.Errorf("cancel of unknown order: %v, want order_not_found", err)
	}
	if _, err := e.Order(ctx, "not a valid id"); !surge.HasCode(err, surge.CodeOrderNotFound) {
		t.Errorf("order with invalid id: %v, want order_not_found", err)
	}
}

func TestPayKeepsUnits(t *testing.T) {
	clk := fixedClock()
	e := openEngine(t, openStore(t, t.TempDir()), testConfig(clk))
	ctx := context.Background()
	in := input("s", 2, 2)
	in.HoldSeconds = ptr(int64(10))
	mustCreate(t, e, in)
	o := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 2})
	p, err := e.Pay(ctx, o.ID)
	if err != nil || p.Status != surge.OrderPaid {
		t.Fatalf("pay: (%+v, %v)", p, err)
	}
	clk.Advance(time.Hour)
	e.ExpireNow()
	if got := remaining(t, e, "s"); got != 0 {
		t.Errorf("paid units came back: remaining %d", got)
	}
	if _, err := e.Pay(ctx, o.ID); !surge.HasCode(err, surge.CodeNotPayable) {
		t.Errorf("second pay: %v, want not_payable", err)
	}
	if _, err := e.Cancel(ctx, o.ID); !surge.HasCode(err, surge.CodeNotCancellable) {
		t.Errorf("cancel of paid order: %v, want not_cancellable", err)
	}
}

func TestExpireNowReleases(t *testing.T) {
	clk := fixedClock()
	e := openEngine(t, openStore(t, t.TempDir()), testConfig(clk))
	ctx := context.Background()
	in := input("s", 2, 2)
	in.HoldSeconds = ptr(int64(60))
	mustCreate(t, e, in)

	o := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 2})
	if s, _ := e.Sale("s"); s.Remaining != 0 || s.Status != surge.SaleSoldOut {
		t.Fatalf("after sell-out: %+v", s)
	}

	clk.Advance(59 * time.Second)
	e.ExpireNow()
	if got := remaining(t, e, "s"); got != 0 {
		t.Fatalf("hold released early: remaining %d", got)
	}
	if got, _ := e.Order(ctx, o.ID); got.Status != surge.OrderReserved {
		t.Fatalf("status %q before the hold ended", got.Status)
	}

	clk.Advance(time.Second) // exactly at ExpiresAt
	e.ExpireNow()
	if s, _ := e.Sale("s"); s.Remaining != 2 || s.Status != surge.SaleLive {
		t.Errorf("after expiry: remaining %d status %q, want 2 live", s.Remaining, s.Status)
	}
	if got, _ := e.Order(ctx, o.ID); got.Status != surge.OrderExpired {
		t.Errorf("status %q, want expired", got.Status)
	}
	if _, err := e.Cancel(ctx, o.ID); !surge.HasCode(err, surge.CodeNotCancellable) {
		t.Errorf("cancel of expired order: %v, want not_cancellable", err)
	}
	// The units are for sale again, including to the same buyer.
	mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 2})
}

// expiresBeforeRegistering runs the store's expiry just before the engine
// registers for its releases: holds that ended while the engine opened,
// whose release nobody hears.
type expiresBeforeRegistering struct {
	*hookStore
	now func() time.Time
}

func (s expiresBeforeRegistering) OnRelease(fn func(saleID string, expired int)) {
	if fn != nil {
		if _, err := s.Expire(context.Background(), s.now()); err != nil {
			panic(err)
		}
	}
	s.hookStore.OnRelease(fn)
}

// Holds the store expires while the engine opens (its first expiry pass
// after a start that follows downtime) must reach the engine's hint: the
// engine reads each sale's remaining stock before it registers for the
// store's releases, and a sold-out hint nobody raises refuses every
// purchase of units that are for sale.
func TestReleaseWhileOpeningIsHeard(t *testing.T) {
	clk := fixedClock()
	st := openStore(t, t.TempDir())
	e := openEngine(t, st, testConfig(clk))
	in := input("s", 2, 2)
	in.HoldSeconds = ptr(int64(60))
	mustCreate(t, e, in)
	mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 2})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute) // the hold ends while no engine runs
	hs := &hookStore{Store: st}
	e = openEngine(t, expiresBeforeRegistering{hookStore: hs, now: clk.Now}, testConfig(clk))
	if hs.expired.Load() != 1 {
		t.Fatalf("the store expired %d orders while the engine opened, want 1", hs.expired.Load())
	}
	if got := remaining(t, e, "s"); got != 2 {
		t.Errorf("remaining %d after the hold expired, want 2", got)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u2", Quantity: 1}); out.Code != surge.CodeReserved {
		t.Errorf("a purchase of a unit the expiry gave back: %s, want reserved", out.Code)
	}
}

func TestCreateSale(t *testing.T) {
	clk := fixedClock()
	e := openEngine(t, openStore(t, t.TempDir()), testConfig(clk))
	ctx := context.Background()

	s := mustCreate(t, e, input("dup", 5, 2))
	if s.ID != "dup" || s.Stock != 5 || s.PerUserLimit != 2 || s.Remaining != 5 || s.Status != surge.SaleLive ||
		!s.StartsAt.Equal(clk.Now()) || s.HoldSeconds != surge.DefaultHold {
		t.Errorf("created %+v", s)
	}
	if _, err := e.CreateSale(ctx, input("dup", 9, 1)); !surge.HasCode(err, surge.CodeSaleExists) {
		t.Errorf("duplicate: %v, want sale_exists", err)
	}
	if got := remaining(t, e, "dup"); got != 5 {
		t.Errorf("duplicate changed the sale: remaining %d", got)
	}

	now := clk.Now()
	bad := []struct {
		name string
		in   surge.SaleInput
	}{
		{"no name", surge.SaleInput{ID: ptr("x"), Stock: ptr(int64(1))}},
		{"blank name", surge.SaleInput{ID: ptr("x"), Name: ptr("  "), Stock: ptr(int64(1))}},
		{"no stock", surge.SaleInput{ID: ptr("x"), Name: ptr("x")}},
		{"zero stock", input("x", 0, 1)},
		{"limit above stock", input("x", 2, 3)},
		{"zero limit", input("x", 2, 0)},
		{"bad id", input("has space", 2, 1)},
		{"negative price", func() surge.SaleInput { in := input("x", 2, 1); in.PriceCents = ptr(int64(-1)); return in }()},
		{"lower-case currency", func() surge.SaleInput { in := input("x", 2, 1); in.Currency = ptr("usd"); return in }()},
		{"ends before start", func() surge.SaleInput { in := input("x", 2, 1); in.EndsAt = ptr(now.Add(-time.Second)); return in }()},
		{"zero hold", func() surge.SaleInput { in := input("x", 2, 1); in.HoldSeconds = ptr(int64(0)); return in }()},
	}
	for _, c := range bad {
		if _, err := e.CreateSale(ctx, c.in); surge.ErrorCode(err) != surge.CodeInvalid {
			t.Errorf("%s: %v, want invalid_request", c.name, err)
		}
	}
	if n := len(e.Sales()); n != 1 {
		t.Errorf("%d sales after rejected inputs, want 1", n)
	}
	if _, err := e.Sale("x"); !surge.HasCode(err, surge.CodeSaleNotFound) {
		t.Errorf("rejected sale is visible: %v", err)
	}
}

func TestSalesOrder(t *testing.T) {
	clk := fixedClock()
	st := openStore(t, t.TempDir())
	e := openEngine(t, st, testConfig(clk))
	mustCreate(t, e, input("zeta", 1, 1))
	// Same instant: created a millisecond after zeta, so that a listing's
	// cursor taken on zeta does not skip it (TestSalesCreatedWhilePagingAreListed).
	mustCreate(t, e, input("alpha", 1, 1))
	clk.Advance(time.Millisecond)
	mustCreate(t, e, input("mid", 1, 1))
	clk.Advance(time.Second)
	mustCreate(t, e, input("aaa", 1, 1))

	want := []string{"zeta", "alpha", "mid", "aaa"}
	ids := func(ss []SaleState) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	if got := ids(e.Sales()); !slices.Equal(got, want) {
		t.Errorf("Sales() = %v, want %v", got, want)
	}
	// An engine rebuilt from the store lists them the same way.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openEngine(t, st, testConfig(clk))
	if got := ids(e2.Sales()); !slices.Equal(got, want) {
		t.Errorf("reopened Sales() = %v, want %v", got, want)
	}
	if _, err := e2.Sale("nope"); !surge.HasCode(err, surge.CodeSaleNotFound) {
		t.Errorf("unknown sale: %v", err)
	}
}

// stalledEngine opens an engine over a store whose first Reserve call
// waits for g.open: purchases then queue behind it, deterministically.
func stalledEngine(t *testing.T, cfg Config) (*Engine, *sqlite.Store, *hookStore, *gate) {
	t.Helper()
	g := newGate()
	st := openStore(t, t.TempDir())
	hs := &hookStore{Store: st}
	hs.before = func(n int64) {
		if n == 1 {
			g.wait()
		}
	}
	e := openEngine(t, hs, cfg)
	t.Cleanup(g.open)
	return e, st, hs, g
}

// TestOverloaded fills a one-slot inbox behind a stalled store: further
// purchases are turned away at once instead of queueing.
func TestOverloaded(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.InboxSize = 1
	e, _, _, g := stalledEngine(t, cfg)
	mustCreate(t, e, input("s", 100, 1))
	ctx := context.Background()

	a := goPurchase(ctx, e, "s", surge.Purchase{UserID: "a", Quantity: 1})
	<-g.entered // the owner is stuck in Reserve
	b := goPurchase(ctx, e, "s", surge.Purchase{UserID: "b", Quantity: 1})
	waitFor(t, "b to queue", func() bool { return inboxLen(e, "s") == 1 })

	// Called synchronously: if the engine blocked here the test would hang.
	for _, u := range []string{"c", "d"} {
		if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: u, Quantity: 1}}); !surge.HasCode(err, surge.CodeOverloaded) {
			t.Errorf("purchase %s with a full inbox: %v, want overloaded", u, err)
		}
	}
	g.open()
	for name, ch := range map[string]<-chan answer{"a": a, "b": b} {
		if r := <-ch; r.err != nil || r.out.Code != surge.CodeReserved {
			t.Errorf("%s: (%+v, %v), want reserved", name, r.out, r.err)
		}
	}
	if got := remaining(t, e, "s"); got != 98 {
		t.Errorf("remaining %d, want 98: rejected purchases must not reserve", got)
	}
}

// TestContextCancelledInInbox checks that a caller who gives up while
// queued gets its context's error and that the owner drops the request.
func TestContextCancelledInInbox(t *testing.T) {
	cfg, batches := metered(t, testConfig(fixedClock()))
	e, st, hs, g := stalledEngine(t, cfg)
	mustCreate(t, e, input("s", 100, 1))
	ctx := context.Background()

	a := goPurchase(ctx, e, "s", surge.Purchase{UserID: "a", Quantity: 1})
	<-g.entered
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := goPurchase(bctx, e, "s", surge.Purchase{UserID: "b", IdempotencyKey: "kb", Quantity: 1})
	waitFor(t, "b to queue", func() bool { return inboxLen(e, "s") == 1 })
	cancel()
	if r := <-b; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled purchase: (%+v, %v), want context.Canceled", r.out, r.err)
	}

	g.open()
	if r := <-a; r.err != nil || r.out.Code != surge.CodeReserved {
		t.Fatalf("a: (%+v, %v)", r.out, r.err)
	}
	// The owner serves its inbox in order, so once c is answered b has
	// been taken and dropped.
	mustReserve(t, e, "s", surge.Purchase{UserID: "c", Quantity: 1})

	if n := hs.purchases.Load(); n != 2 {
		t.Errorf("the store was asked for %d purchases, want 2 (a and c)", n)
	}
	if _, p := batches(); p != 2 {
		t.Errorf("surge_batch_size counted %d purchases, want 2", p)
	}
	var users []string
	for _, o := range ordersOf(t, st, "s") {
		users = append(users, o.UserID)
	}
	if !slices.Equal(users, []string{"a", "c"}) {
		t.Errorf("orders of users %v, want [a c]", users)
	}
	if _, state := st.LookupKey("s", "b", "kb"); state != surge.KeyUnknown {
		t.Errorf("the dropped purchase's key is in state %v", state)
	}
	if got := remaining(t, e, "s"); got != 98 {
		t.Errorf("remaining %d, want 98", got)
	}
}

// TestCloseFlushesInbox closes the engine while purchases are queued behind
// a stalled store: each gets its answer and Close then returns.
func TestCloseFlushesInbox(t *testing.T) {
	e, st, _, g := stalledEngine(t, testConfig(fixedClock()))
	mustCreate(t, e, input("s", 100, 1))
	ctx := context.Background()

	if !e.Ready() {
		t.Fatal("a new engine is not ready")
	}
	var answers []<-chan answer
	answers = append(answers, goPurchase(ctx, e, "s", surge.Purchase{UserID: "a", Quantity: 1}))
	<-g.entered
	for _, u := range []string{"b", "c", "d"} {
		answers = append(answers, goPurchase(ctx, e, "s", surge.Purchase{UserID: u, Quantity: 1}))
	}
	waitFor(t, "three queued purchases", func() bool { return inboxLen(e, "s") == 3 })

	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	waitFor(t, "Close to begin", func() bool { return !e.Ready() })
	if _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "late", Quantity: 1}}); !surge.HasCode(err, surge.CodeUnavailable) {
		t.Errorf("purchase while closing: %v, want unavailable", err)
	}
	if _, err := e.CreateSale(ctx, input("t", 1, 1)); !surge.HasCode(err, surge.CodeUnavailable) {
		t.Errorf("create sale while closing: %v, want unavailable", err)
	}

	g.open()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	for i, ch := range answers {
		if r := <-ch; r.err != nil || r.out.Code != surge.CodeReserved {
			t.Errorf("purchase %d: (%+v, %v), want reserved", i, r.out, r.err)
		}
	}
	if e.Ready() {
		t.Error("Ready after Close")
	}
	if err := e.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if n := len(ordersOf(t, st, "s")); n != 4 {
		t.Errorf("%d orders stored, want 4", n)
	}
}

// TestLonePurchaseIsOneBatch: on an idle engine a purchase is sent to the
// store on its own rather than held back to wait for company.
func TestLonePurchaseIsOneBatch(t *testing.T) {
	hs := &hookStore{Store: openStore(t, t.TempDir())}
	cfg, batches := metered(t, testConfig(fixedClock()))
	e := openEngine(t, hs, cfg)
	mustCreate(t, e, input("s", 10, 1))
	mustReserve(t, e, "s", surge.Purchase{UserID: "u", Quantity: 1})
	if b, p := batches(); b != 1 || p != 1 {
		t.Errorf("surge_batch_size: %d batches of %d purchases, want 1 of 1", b, p)
	}
	if n := hs.reserves.Load(); n != 1 {
		t.Errorf("%d Reserve calls, want 1", n)
	}
}

// TestBatchesFormUnderLoad: whatever queues while a batch commits goes to
// the store as the next single batch.
func TestBatchesFormUnderLoad(t *testing.T) {
	const n = 64
	cfg, batches := metered(t, testConfig(fixedClock()))
	e, _, _, g := stalledEngine(t, cfg)
	mustCreate(t, e, input("s", n, 1))
	ctx := context.Background()

	answers := []<-chan answer{goPurchase(ctx, e, "s", surge.Purchase{UserID: "u0", Quantity: 1})}
	<-g.entered
	for i := 1; i < n; i++ {
		answers = append(answers, goPurchase(ctx, e, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1}))
	}
	waitFor(t, "the load to queue", func() bool { return inboxLen(e, "s") == n-1 })
	g.open()
	for i, ch := range answers {
		if r := <-ch; r.err != nil || r.out.Code != surge.CodeReserved {
			t.Errorf("purchase %d: (%+v, %v)", i, r.out, r.err)
		}
	}
	b, p := batches()
	if b != 2 || p != n {
		t.Errorf("surge_batch_size: %d batches of %d purchases in all, want 2 of %d", b, p, n)
	}
	if mean := float64(p) / float64(b); mean <= 1 {
		t.Errorf("mean batch %.2f, want > 1", mean)
	}
	if got := remaining(t, e, "s"); got != 0 {
		t.Errorf("remaining %d, want 0", got)
	}
}

// TestRemainingHintNotStale: units returned while a batch is committing
// must not be hidden by the figure that batch computed before them, or the
// fast path would answer sold_out for units that are for sale.
func TestRemainingHintNotStale(t *testing.T) {
	g := newGate()
	st := openStore(t, t.TempDir())
	hs := &hookStore{Store: st}
	hs.after = func(n int64) {
		if n == 2 {
			g.wait() // the batch is decided and durable, its answer not yet out
		}
	}
	e := openEngine(t, hs, testConfig(fixedClock()))
	t.Cleanup(g.open)
	ctx := context.Background()
	mustCreate(t, e, input("s", 2, 2))

	first := mustReserve(t, e, "s", surge.Purchase{UserID: "u1", Quantity: 1}) // Reserve call 1
	second := goPurchase(ctx, e, "s", surge.Purchase{UserID: "u2", Quantity: 1})
	<-g.entered // call 2 sold the last unit
	if _, err := e.Cancel(ctx, first.ID); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	g.open()
	if r := <-second; r.err != nil || r.out.Code != surge.CodeReserved {
		t.Fatalf("second: (%+v, %v)", r.out, r.err)
	}

	want, err := st.Remaining(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if want != 1 {
		t.Fatalf("store remaining %d, want 1", want)
	}
	if got := remaining(t, e, "s"); got != want {
		t.Errorf("engine remaining %d, store %d", got, want)
	}
	if out := mustPurchase(t, e, "s", surge.Purchase{UserID: "u3", Quantity: 1}); out.Code != surge.CodeReserved {
		t.Errorf("the unit given back is not for sale: %+v", out)
	}
}

// TestOrderChangesAnswerWhileStoreStalls: a cancel, an operator's pay and
// a provider's payment event are request paths like a purchase, so they
// too are answered within PurchaseTimeout while the store cannot commit
// (here another connection holds SQLite's write lock, as an operator's
// `sqlite3 surge.db` left in a transaction does): 503 unavailable with a
// Retry-After, not one after another for as long as the stall lasts. The
// change still lands once the store commits again.
func TestOrderChangesAnswerWhileStoreStalls(t *testing.T) {
	const (
		orders  = 4
		timeout = 300 * time.Millisecond
		bound   = 3 * time.Second // the timeout, and room for a loaded machine
		stall   = 6 * time.Second // how long the lock is held at most
	)
	for _, tc := range []struct {
		name   string
		change func(e *Engine, o surge.Order) error
		status surge.OrderStatus
	}{
		{"cancel", func(e *Engine, o surge.Order) error { _, err := e.Cancel(context.Background(), o.ID); return err }, surge.OrderCancelled},
		{"pay", func(e *Engine, o surge.Order) error { _, err := e.Pay(context.Background(), o.ID); return err }, surge.OrderPaid},
		{"payment event", func(e *Engine, o surge.Order) error {
			_, err := e.RecordPayment(context.Background(), surge.PaymentEvent{ID: "pay-" + o.ID, Type: surge.PaymentSucceeded,
				OrderID: o.ID, AmountCents: 100 * o.Quantity, Currency: "EUR", Created: o.CreatedAt, Provider: "surge"})
			return err
		}, surge.OrderPaid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(fixedClock())
			cfg.PurchaseTimeout = timeout
			e := openEngine(t, openStore(t, dir), cfg)
			in := input("s", 10, 1)
			in.PriceCents, in.Currency = ptr(int64(100)), ptr("EUR")
			mustCreate(t, e, in)
			var placed []surge.Order
			for i := range orders {
				placed = append(placed, mustReserve(t, e, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1}))
			}

			release := servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "surge.db"))
			defer release()
			// Old code answers only once the lock is gone: let it go.
			defer time.AfterFunc(stall, release).Stop()

			var wg sync.WaitGroup
			for i, o := range placed {
				wg.Go(func() {
					start := time.Now()
					err := tc.change(e, o)
					took := time.Since(start)
					var se *surge.Error
					switch {
					case took > bound:
						t.Errorf("%s of order %d answered after %v (%v) while the store could not commit: a request path "+
							"without a timeout, want 503 unavailable within %v", tc.name, i, took.Round(time.Millisecond), err, timeout)
					case !errors.As(err, &se) || se.Code != surge.CodeUnavailable || se.RetryAfter <= 0:
						t.Errorf("%s of order %d while the store could not commit: %v, want unavailable with a Retry-After", tc.name, i, err)
					}
				})
			}
			wg.Wait()
			release()
			// The changes were still made: each order reaches its status.
			deadline := time.Now().Add(30 * time.Second)
			for i, o := range placed {
				for {
					got, err := e.Order(context.Background(), o.ID)
					if err == nil && got.Status == tc.status {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("order %d after the stall: %+v, %v; want %s (the %s answered 503 goes on)", i, got, err, tc.status, tc.name)
					}
					time.Sleep(10 * time.Millisecond) // polling the order
				}
			}
		})
	}
}

// A listing that is being paged through lists every sale created
// meanwhile on a later page (docs/api.md: "a cursor marks the last sale of
// its page, so sales created meanwhile appear on a later page"), whatever
// the id the operator gave it and even in the millisecond of the cursor's
// sale.
func TestSalesCreatedWhilePagingAreListed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		before   []string // created before the first page
		meantime string   // created after the first page, same millisecond
	}{
		{"id sorting before the cursor's", []string{"m", "z"}, "a"},
		{"id sorting after the cursor's", []string{"m", "z"}, "n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fixedClock()
			e := openEngine(t, openStore(t, t.TempDir()), testConfig(clk))
			for _, id := range tc.before {
				mustCreate(t, e, input(id, 3, 1))
			}
			page, next := e.SalesPage(false, nil, 1)
			got := []string{page[0].ID}
			mustCreate(t, e, input(tc.meantime, 3, 1))
			for next != nil {
				page, next = e.SalesPage(false, next, 1)
				for _, s := range page {
					got = append(got, s.ID)
				}
			}
			if !slices.Contains(got, tc.meantime) {
				t.Fatalf("sale %q, created while a buyer paged through the listing, was never listed (pages listed %v): "+
					"a cursor skips sales created meanwhile", tc.meantime, got)
			}
		})
	}
}
