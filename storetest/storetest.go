// Package storetest is the contract suite of surge.Store. Every backend
// runs it unchanged from its own tests:
//
//	func TestContract(t *testing.T) { storetest.Run(t, harness) }
//
// The suite drives the store with explicit times (never the wall clock), so
// its outcomes are deterministic, and checks behaviour only through the
// surge.Store interface, so it says nothing about how a backend works.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// Harness opens stores of one backend.
type Harness struct {
	// New prepares a fresh, empty dataset for one subtest and returns the
	// function that opens a store over it. Calling open again after the
	// previous store was closed must reopen the same data: that is how the
	// suite tests durability and recovery. open should fail t if it cannot
	// open; the suite closes every store it opens.
	New func(t *testing.T) (open func(t *testing.T) surge.Store)
}

// Run runs the whole contract suite against the backend h opens.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	t.Run("Sales", func(t *testing.T) { testSales(t, h) })
	t.Run("Reserve", func(t *testing.T) { testReserve(t, h) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, h) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, h) })
	t.Run("Pay", func(t *testing.T) { testPay(t, h) })
	t.Run("Transitions", func(t *testing.T) { testTransitions(t, h) })
	t.Run("HoldEnd", func(t *testing.T) { testHoldEnd(t, h) })
	t.Run("Expire", func(t *testing.T) { testExpire(t, h) })
	t.Run("Orders", func(t *testing.T) { testOrders(t, h) })
	t.Run("Recovery", func(t *testing.T) { testRecovery(t, h) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, h) })
	t.Run("Archive", func(t *testing.T) { testArchive(t, h) })
}

// holdSeconds is the hold of the suite's sales unless a test says otherwise.
const holdSeconds = 60

const hold = holdSeconds * time.Second

// at is the suite's clock: a fixed base time plus d.
func at(d time.Duration) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(d)
}

// ---- building sales ----

// saleOpt adjusts the input of a sale, or the time it is created at.
type saleOpt func(in *surge.SaleInput, created *time.Time)

func startsAt(ts time.Time) saleOpt {
	return func(in *surge.SaleInput, _ *time.Time) { in.StartsAt = &ts }
}

func endsAt(ts time.Time) saleOpt {
	return func(in *surge.SaleInput, _ *time.Time) { in.EndsAt = &ts }
}

func holdFor(seconds int64) saleOpt {
	return func(in *surge.SaleInput, _ *time.Time) { in.HoldSeconds = &seconds }
}

func createdAt(ts time.Time) saleOpt {
	return func(_ *surge.SaleInput, created *time.Time) { *created = ts }
}

func waitingRoom(rate int64, order string, ticketSeconds int64) saleOpt {
	return func(in *surge.SaleInput, _ *time.Time) {
		in.WaitingRoom = &surge.WaitingRoom{AdmitPerSecond: rate, Policy: order, TicketSeconds: ticketSeconds}
	}
}

func priced(cents int64, currency string) saleOpt {
	return func(in *surge.SaleInput, _ *time.Time) { in.PriceCents, in.Currency = &cents, &currency }
}

// newSale builds a valid sale through surge.NewSale, as the API would: open
// from at(0), no end, a 60 s hold.
func newSale(t testing.TB, id string, stock, limit int64, opts ...saleOpt) surge.Sale {
	t.Helper()
	name := "Sale " + id
	start := at(0)
	h := int64(holdSeconds)
	in := surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start, HoldSeconds: &h}
	created := at(0)
	for _, o := range opts {
		o(&in, &created)
	}
	s, err := surge.NewSale(in, created)
	if err != nil {
		t.Fatalf("NewSale(%s): %v", id, err)
	}
	return s
}

func buy(user string, q int64) surge.Purchase { return surge.Purchase{UserID: user, Quantity: q} }

func buyKey(user, key string, q int64) surge.Purchase {
	return surge.Purchase{UserID: user, IdempotencyKey: key, Quantity: q}
}

// ---- the store under test ----

// env is one subtest's dataset and the store currently open over it.
type env struct {
	t    *testing.T
	ctx  context.Context
	open func(*testing.T) surge.Store
	s    surge.Store
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), open: h.New(t)}
	e.s = e.open(t)
	t.Cleanup(func() {
		if e.s != nil {
			if err := e.s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return e
}

// on returns e reporting to t, for subtests sharing e's dataset. It must
// not reopen: the copy's store would go stale.
func (e *env) on(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// reopen closes the store and opens a new one over the same data.
func (e *env) reopen() {
	e.t.Helper()
	s := e.s
	e.s = nil
	if err := s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.s = e.open(e.t)
}

func (e *env) createSale(sales ...surge.Sale) {
	e.t.Helper()
	for _, s := range sales {
		if err := e.s.CreateSale(e.ctx, s); err != nil {
			e.t.Fatalf("CreateSale(%s): %v", s.ID, err)
		}
	}
}

func (e *env) sales() []surge.Sale {
	e.t.Helper()
	ss, err := e.s.Sales(e.ctx)
	if err != nil {
		e.t.Fatalf("Sales: %v", err)
	}
	return ss
}

// reserve runs one batch that must not fail and checks the shape of the
// answer.
func (e *env) reserve(saleID string, now time.Time, batch ...surge.Purchase) ([]surge.Outcome, int64) {
	e.t.Helper()
	out, rem, err := e.s.Reserve(e.ctx, saleID, batch, now)
	if err != nil {
		e.t.Fatalf("Reserve(%s, %v): %v", saleID, batch, err)
	}
	if len(out) != len(batch) {
		e.t.Fatalf("Reserve(%s): %d outcomes for %d purchases", saleID, len(out), len(batch))
	}
	return out, rem
}

// reserveOne reserves p, which must succeed as a new order.
func (e *env) reserveOne(saleID string, now time.Time, p surge.Purchase) surge.Order {
	e.t.Helper()
	out, _ := e.reserve(saleID, now, p)
	if out[0].Code != surge.CodeReserved || out[0].Replay {
		e.t.Fatalf("Reserve(%s, %+v) = %+v, want a new reservation", saleID, p, out[0])
	}
	return out[0].Order
}

func (e *env) remaining(saleID string) int64 {
	e.t.Helper()
	n, err := e.s.Remaining(e.ctx, saleID)
	if err != nil {
		e.t.Fatalf("Remaining(%s): %v", saleID, err)
	}
	return n
}

func (e *env) wantRemaining(saleID string, want int64) {
	e.t.Helper()
	if got := e.remaining(saleID); got != want {
		e.t.Errorf("Remaining(%s) = %d, want %d", saleID, got, want)
	}
}

func (e *env) order(id string) surge.Order {
	e.t.Helper()
	o, err := e.s.Order(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Order(%s): %v", id, err)
	}
	return o
}

func (e *env) orders(saleID string) []surge.Order {
	e.t.Helper()
	var os []surge.Order
	if err := e.s.Orders(e.ctx, saleID, func(o surge.Order) error {
		os = append(os, o)
		return nil
	}); err != nil {
		e.t.Fatalf("Orders(%s): %v", saleID, err)
	}
	return os
}

func (e *env) cancel(id string, now time.Time) surge.Order {
	e.t.Helper()
	o, err := e.s.Cancel(e.ctx, id, now)
	if err != nil {
		e.t.Fatalf("Cancel(%s): %v", id, err)
	}
	return o
}

func (e *env) pay(id string, now time.Time) surge.Order {
	e.t.Helper()
	o, err := e.s.Pay(e.ctx, id, now)
	if err != nil {
		e.t.Fatalf("Pay(%s): %v", id, err)
	}
	return o
}

// Expirer is the expiry job of a store, run at a time the suite chooses:
// every store must offer it, and must not expire holds on its own while
// the suite runs (its clock is not the wall clock).
type Expirer interface {
	// Expire moves every reserved order whose hold ended at or before now
	// to expired, returning its units, and returns the orders it expired.
	Expire(ctx context.Context, now time.Time) ([]surge.Order, error)
}

func (e *env) expire(now time.Time) []surge.Order {
	e.t.Helper()
	x, ok := e.s.(Expirer)
	if !ok {
		e.t.Fatalf("storetest: %T does not implement storetest.Expirer", e.s)
	}
	os, err := x.Expire(e.ctx, now)
	if err != nil {
		e.t.Fatalf("Expire(%v): %v", now, err)
	}
	return os
}

// wantExpire expires at now and wants exactly the orders want, as they
// were before, now expired. The order among sales is not specified.
func (e *env) wantExpire(now time.Time, want ...surge.Order) {
	e.t.Helper()
	got := e.expire(now)
	byID := func(a, b surge.Order) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(got, byID)
	want = slices.Clone(want)
	for i := range want {
		want[i].Status = surge.OrderExpired
	}
	slices.SortFunc(want, byID)
	if d := ordersDiff(got, want); d != "" {
		e.t.Errorf("Expire(%v):\n%s", now, d)
	}
}

// wantReplay asks again for p and wants the replay of first.
func (e *env) wantReplay(saleID string, now time.Time, p surge.Purchase, first surge.Order) {
	e.t.Helper()
	out, _ := e.reserve(saleID, now, p)
	if out[0].Code != surge.CodeReserved || !out[0].Replay {
		e.t.Errorf("Reserve(%s, %+v) = code %q replay %v, want a replay", saleID, p, out[0].Code, out[0].Replay)
	}
	if d := orderDiff(out[0].Order, first); d != "" {
		e.t.Errorf("replay of %+v: order differs from the first answer:\n%s", p, d)
	}
}

// wantMismatch asks for p, whose key was first used with another
// quantity, and wants it refused as idempotency_mismatch, reserving nothing.
func (e *env) wantMismatch(saleID string, now time.Time, p surge.Purchase) {
	e.t.Helper()
	before := e.remaining(saleID)
	out, rem := e.reserve(saleID, now, p)
	if out[0].Code != surge.CodeIdempotencyMismatch || out[0].Replay {
		e.t.Errorf("Reserve(%s, %+v) = code %q replay %v, want idempotency_mismatch", saleID, p, out[0].Code, out[0].Replay)
	}
	if rem != before {
		e.t.Errorf("Reserve(%s, %+v) left %d, want %d: a mismatch reserves nothing", saleID, p, rem, before)
	}
}

// wantKey wants LookupKey to know the key as done, answering first.
func (e *env) wantKey(saleID, user, key string, first surge.Order) {
	e.t.Helper()
	o, st := e.s.LookupKey(saleID, user, key)
	if st != surge.KeyDone {
		e.t.Errorf("LookupKey(%s, %s, %s) state = %v, want KeyDone", saleID, user, key, st)
		return
	}
	if d := orderDiff(o, first); d != "" {
		e.t.Errorf("LookupKey(%s, %s, %s) order differs from the first answer:\n%s", saleID, user, key, d)
	}
}

// wantKeyOrDisk is wantKey for the key of an order no longer live, created
// long ago: a store may keep such keys on disk only, and then LookupKey
// must say KeyMaybe (never KeyUnknown) and Reserve must still replay it.
func (e *env) wantKeyOrDisk(saleID, user, key string, first surge.Order) {
	e.t.Helper()
	if _, st := e.s.LookupKey(saleID, user, key); st == surge.KeyMaybe {
		return
	}
	e.wantKey(saleID, user, key, first)
}

// wantErr wants target itself, or for a *surge.Error any error of its code:
// stores build their own.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	var code *surge.Error
	if errors.As(target, &code) && surge.HasCode(err, code.Code) {
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

// ---- comparing ----

// timeDiff compares instants and insists on UTC, which every backend must
// return so answers are identical whatever the server's zone.
func timeDiff(name string, got, want time.Time) string {
	if !got.Equal(want) || got.Location() != time.UTC {
		return fmt.Sprintf("  %s: got %v, want %v\n", name, got, want)
	}
	return ""
}

func valDiff[T comparable](name string, got, want T) string {
	if got != want {
		return fmt.Sprintf("  %s: got %v, want %v\n", name, got, want)
	}
	return ""
}

func saleDiff(got, want surge.Sale) string {
	return valDiff("ID", got.ID, want.ID) +
		valDiff("Name", got.Name, want.Name) +
		valDiff("Stock", got.Stock, want.Stock) +
		valDiff("PerUserLimit", got.PerUserLimit, want.PerUserLimit) +
		valDiff("PriceCents", got.PriceCents, want.PriceCents) +
		valDiff("Currency", got.Currency, want.Currency) +
		timeDiff("StartsAt", got.StartsAt, want.StartsAt) +
		timeDiff("EndsAt", got.EndsAt, want.EndsAt) +
		valDiff("HoldSeconds", got.HoldSeconds, want.HoldSeconds) +
		timeDiff("CreatedAt", got.CreatedAt, want.CreatedAt) +
		valDiff("WaitingRoom", roomString(got.WaitingRoom), roomString(want.WaitingRoom))
}

func roomString(wr *surge.WaitingRoom) string {
	if wr == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", *wr)
}

func orderDiff(got, want surge.Order) string {
	return valDiff("ID", got.ID, want.ID) +
		valDiff("SaleID", got.SaleID, want.SaleID) +
		valDiff("UserID", got.UserID, want.UserID) +
		valDiff("Quantity", got.Quantity, want.Quantity) +
		valDiff("Status", got.Status, want.Status) +
		valDiff("IdempotencyKey", got.IdempotencyKey, want.IdempotencyKey) +
		timeDiff("CreatedAt", got.CreatedAt, want.CreatedAt) +
		timeDiff("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func listDiff[T any](what string, got, want []T, diff func(got, want T) string) string {
	var b strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&b, "%d %s, want %d\n", len(got), what, len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diff(got[i], want[i]); d != "" {
			fmt.Fprintf(&b, "%s[%d]:\n%s", what, i, d)
		}
	}
	return b.String()
}

func ordersDiff(got, want []surge.Order) string { return listDiff("orders", got, want, orderDiff) }

func salesDiff(got, want []surge.Sale) string { return listDiff("sales", got, want, saleDiff) }

// withStatus returns o as it is after a transition.
func withStatus(o surge.Order, st surge.OrderStatus) surge.Order {
	o.Status = st
	return o
}

// ---- sales ----

func testSales(t *testing.T, h Harness) {
	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, h)
		if ss := e.sales(); len(ss) != 0 {
			t.Errorf("Sales of an empty store = %v, want none", ss)
		}
	})

	t.Run("RoundTripOldestFirst", func(t *testing.T) {
		e := newEnv(t, h)
		// Sub-millisecond parts and a non-UTC zone on input: stored
		// times are the NewSale ones, truncated to the ms, in UTC.
		paris := time.FixedZone("CET", 3600)
		mid := newSale(t, "mid", 100, 5, createdAt(at(2*time.Second)),
			startsAt(at(time.Hour+1500*time.Microsecond+7).In(paris)),
			endsAt(at(2*time.Hour+999*time.Microsecond).In(paris)),
			holdFor(300), priced(1999, "EUR"))
		old := newSale(t, "old", 1, 1, createdAt(at(time.Second+250*time.Microsecond)))
		young := newSale(t, "young_-9", surge.MaxStock, surge.MaxStock, createdAt(at(3*time.Second)), priced(0, "JPY"))
		if want := at(time.Hour + time.Millisecond); !mid.StartsAt.Equal(want) {
			t.Fatalf("NewSale did not truncate StartsAt: %v, want %v", mid.StartsAt, want)
		}
		e.createSale(mid, old, young)
		want := []surge.Sale{old, mid, young}
		if !want[0].EndsAt.IsZero() {
			t.Fatalf("fixture: sale %s should have no end", old.ID)
		}
		if d := salesDiff(e.sales(), want); d != "" {
			t.Errorf("Sales:\n%s", d)
		}
		for _, s := range want {
			e.wantRemaining(s.ID, s.Stock)
		}
		e.reopen()
		if d := salesDiff(e.sales(), want); d != "" {
			t.Errorf("Sales after reopen:\n%s", d)
		}
	})

	t.Run("WaitingRoom", func(t *testing.T) {
		e := newEnv(t, h)
		// Sales with and without a waiting room, in both orders and at
		// the bounds, side by side: each keeps its own (or none).
		fifo := newSale(t, "fifo", 100, 1, createdAt(at(time.Second)), waitingRoom(250, surge.QueueFIFO, 300))
		plain := newSale(t, "plain", 10, 1, createdAt(at(2*time.Second)))
		lottery := newSale(t, "lottery", 5, 1, createdAt(at(3*time.Second)),
			waitingRoom(surge.MaxAdmitPerSecond, surge.QueueLottery, surge.MaxTicketSeconds))
		slow := newSale(t, "slow", 5, 1, createdAt(at(4*time.Second)), waitingRoom(1, surge.QueueFIFO, 1))
		if fifo.WaitingRoom == nil || plain.WaitingRoom != nil {
			t.Fatal("fixture: NewSale dropped or invented a waiting room")
		}
		e.createSale(fifo, plain, lottery, slow)
		want := []surge.Sale{fifo, plain, lottery, slow}
		if d := salesDiff(e.sales(), want); d != "" {
			t.Errorf("Sales:\n%s", d)
		}
		// A waiting room changes nothing about reservations.
		e.reserveOne(fifo.ID, at(time.Minute), buy("u1", 1))
		e.reopen()
		if d := salesDiff(e.sales(), want); d != "" {
			t.Errorf("Sales after reopen:\n%s", d)
		}
		e.wantRemaining(fifo.ID, 99)
	})

	t.Run("Duplicate", func(t *testing.T) {
		e := newEnv(t, h)
		first := newSale(t, "dup", 10, 1)
		e.createSale(first)
		e.reserveOne(first.ID, at(0), buy("u1", 1))
		again := newSale(t, "dup", 50, 2, createdAt(at(time.Minute)))
		again.Name = "Other"
		wantErr(t, "CreateSale of a taken id", e.s.CreateSale(e.ctx, again), surge.ErrSaleExists)
		if d := salesDiff(e.sales(), []surge.Sale{first}); d != "" {
			t.Errorf("Sales after a duplicate:\n%s", d)
		}
		// The failed create must not reset the sale's state.
		e.wantRemaining(first.ID, 9)
		e.reopen()
		wantErr(t, "CreateSale of a taken id after reopen", e.s.CreateSale(e.ctx, again), surge.ErrSaleExists)
		if d := salesDiff(e.sales(), []surge.Sale{first}); d != "" {
			t.Errorf("Sales after reopen:\n%s", d)
		}
	})
}

// ---- reserve ----

func testReserve(t *testing.T, h Harness) {
	t.Run("Fields", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s1", 10, 3, holdFor(90))
		e.createSale(s)
		now := at(2*time.Hour + 1500*time.Microsecond + 7).In(time.FixedZone("X", -7200))
		created := at(2*time.Hour + time.Millisecond)
		out, rem := e.reserve(s.ID, now, buyKey("alice", "k-1", 2), buy("bob", 1), buy("carol", 3))
		if rem != 4 {
			t.Errorf("remaining = %d, want 4", rem)
		}
		want := []surge.Order{
			{SaleID: s.ID, UserID: "alice", Quantity: 2, IdempotencyKey: "k-1"},
			{SaleID: s.ID, UserID: "bob", Quantity: 1},
			{SaleID: s.ID, UserID: "carol", Quantity: 3},
		}
		ids := map[string]bool{}
		for i, o := range out {
			if o.Code != surge.CodeReserved || o.Replay {
				t.Fatalf("out[%d] = code %q replay %v, want a new reservation", i, o.Code, o.Replay)
			}
			if !surge.ValidID(o.Order.ID) {
				t.Errorf("out[%d]: order id %q is not a valid id", i, o.Order.ID)
			}
			if ids[o.Order.ID] {
				t.Errorf("out[%d]: order id %q answered twice", i, o.Order.ID)
			}
			ids[o.Order.ID] = true
			w := want[i]
			w.ID = o.Order.ID
			w.Status = surge.OrderReserved
			w.CreatedAt = created
			w.ExpiresAt = created.Add(90 * time.Second)
			if d := orderDiff(o.Order, w); d != "" {
				t.Errorf("out[%d].Order:\n%s", i, d)
			}
			if d := orderDiff(e.order(o.Order.ID), w); d != "" {
				t.Errorf("Order(%s):\n%s", o.Order.ID, d)
			}
		}
		e.wantRemaining(s.ID, 4)
	})

	type step struct {
		p    surge.Purchase
		code surge.Code
		left int64 // Outcome.Remaining, for sold_out
	}
	type batch struct {
		now       time.Time
		steps     []step
		remaining int64
	}
	r := func(p surge.Purchase) step { return step{p: p, code: surge.CodeReserved} }
	rej := func(p surge.Purchase, c surge.Code) step { return step{p: p, code: c} }
	soldOut := func(p surge.Purchase, left int64) step { return step{p: p, code: surge.CodeSoldOut, left: left} }

	cases := []struct {
		name    string
		sale    func(t testing.TB) surge.Sale
		batches []batch
	}{{
		name: "InStock",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 2) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2)), r(buy("u2", 1))}, 2},
			{at(time.Minute), []step{r(buy("u3", 2))}, 0},
		},
	}, {
		name: "SoldOut",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 3, 3) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2))}, 1},
			{at(0), []step{soldOut(buy("u2", 2), 1), soldOut(buy("u3", 3), 1), r(buy("u2", 1))}, 0},
			{at(time.Second), []step{soldOut(buy("u3", 1), 0), soldOut(buy("u1", 1), 0)}, 0},
		},
	}, {
		name: "LimitReached",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 10, 3) },
		batches: []batch{
			{at(0), []step{r(buy("u1", 2)), rej(buy("u1", 2), surge.CodeLimitReached)}, 8},
			{at(time.Second), []step{
				rej(buy("u1", 3), surge.CodeLimitReached), r(buy("u1", 1)),
				rej(buy("u1", 1), surge.CodeLimitReached), r(buy("u2", 3)),
			}, 4},
			{at(time.Minute), []step{rej(buy("u2", 1), surge.CodeLimitReached), r(buy("u3", 1))}, 3},
		},
	}, {
		// The same purchases decide differently in another order:
		// decisions apply one after the other within a batch.
		name: "InOrderSmallFirst",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 2, 2) },
		batches: []batch{
			{at(0), []step{r(buy("a", 1)), soldOut(buy("b", 2), 1), r(buy("c", 1)), soldOut(buy("d", 1), 0)}, 0},
		},
	}, {
		name: "InOrderBigFirst",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 2, 2) },
		batches: []batch{
			{at(0), []step{r(buy("b", 2)), soldOut(buy("a", 1), 0), soldOut(buy("c", 1), 0)}, 0},
		},
	}, {
		name: "NotStarted",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 1, startsAt(at(time.Hour))) },
		batches: []batch{
			{at(0), []step{rej(buy("u1", 1), surge.CodeNotStarted)}, 5},
			{at(time.Hour - time.Millisecond), []step{rej(buy("u1", 1), surge.CodeNotStarted), rej(buy("u2", 1), surge.CodeNotStarted)}, 5},
			{at(time.Hour), []step{r(buy("u1", 1))}, 4},
		},
	}, {
		name: "Ended",
		sale: func(t testing.TB) surge.Sale { return newSale(t, "s", 5, 1, endsAt(at(time.Hour))) },
		batches: []batch{
			{at(time.Hour - time.Millisecond), []step{r(buy("u1", 1))}, 4},
			{at(time.Hour), []step{rej(buy("u2", 1), surge.CodeEnded)}, 4},
			{at(48 * time.Hour), []step{rej(buy("u3", 1), surge.CodeEnded)}, 4},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h)
			s := tc.sale(t)
			e.createSale(s)
			var live int64
			for bi, b := range tc.batches {
				ps := make([]surge.Purchase, len(b.steps))
				for i, st := range b.steps {
					ps[i] = st.p
				}
				out, rem := e.reserve(s.ID, b.now, ps...)
				for i, st := range b.steps {
					o := out[i]
					if o.Code != st.code || o.Replay {
						t.Errorf("batch %d, %+v: code %q replay %v, want %q", bi, st.p, o.Code, o.Replay, st.code)
						continue
					}
					switch st.code {
					case surge.CodeReserved:
						live += st.p.Quantity
						if o.Order.UserID != st.p.UserID || o.Order.Quantity != st.p.Quantity || o.Order.SaleID != s.ID {
							t.Errorf("batch %d, %+v: order %+v does not match the purchase", bi, st.p, o.Order)
						}
					case surge.CodeSoldOut:
						if o.Remaining != st.left {
							t.Errorf("batch %d, %+v: sold_out Remaining = %d, want %d", bi, st.p, o.Remaining, st.left)
						}
					}
				}
				if rem != b.remaining {
					t.Errorf("batch %d: remaining = %d, want %d", bi, rem, b.remaining)
				}
				e.wantRemaining(s.ID, b.remaining)
			}
			// Only reservations made orders, and they hold exactly the
			// units the stock lost.
			var held int64
			for _, o := range e.orders(s.ID) {
				held += o.Quantity
			}
			if held != live || s.Stock-held != e.remaining(s.ID) {
				t.Errorf("orders hold %d units, reservations %d, stock %d, remaining %d", held, live, s.Stock, e.remaining(s.ID))
			}
		})
	}

	t.Run("UnknownSale", func(t *testing.T) {
		e := newEnv(t, h)
		e.createSale(newSale(t, "known", 5, 1))
		_, _, err := e.s.Reserve(e.ctx, "unknown", []surge.Purchase{buy("u1", 1)}, at(0))
		wantErr(t, "Reserve of an unknown sale", err, surge.ErrSaleNotFound)
		_, err = e.s.Remaining(e.ctx, "unknown")
		wantErr(t, "Remaining of an unknown sale", err, surge.ErrSaleNotFound)
		e.wantRemaining("known", 5)
	})
}

// ---- idempotency ----

func testIdempotency(t *testing.T, h Harness) {
	t.Run("LaterBatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 5)
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k1", 2))
		e.wantKey(s.ID, "u1", "k1", first)
		// A replay answers the first order whenever it comes, and
		// reserves nothing; the key with another quantity is refused.
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k1", 2), first)
		e.wantMismatch(s.ID, at(time.Minute), buyKey("u1", "k1", 1))
		e.wantReplay(s.ID, at(time.Minute), buyKey("u1", "k1", 2), first)
		e.wantRemaining(s.ID, 8)
		if n := len(e.orders(s.ID)); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		if _, st := e.s.LookupKey(s.ID, "u1", "k2"); st != surge.KeyUnknown {
			t.Errorf("LookupKey of an unused key = %v, want KeyUnknown", st)
		}
		if _, st := e.s.LookupKey(s.ID, "u2", "k1"); st != surge.KeyUnknown {
			t.Errorf("LookupKey of another user's key = %v, want KeyUnknown", st)
		}
		if _, st := e.s.LookupKey("nope", "u1", "k1"); st != surge.KeyUnknown {
			t.Errorf("LookupKey in an unknown sale = %v, want KeyUnknown", st)
		}
	})

	t.Run("SameBatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 3)
		e.createSale(s)
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buy("u2", 1), buyKey("u1", "k", 1), buyKey("u1", "k", 1))
		if out[0].Code != surge.CodeReserved || out[0].Replay {
			t.Fatalf("first = %+v, want a new reservation", out[0])
		}
		for _, i := range []int{2, 3} {
			if out[i].Code != surge.CodeReserved || !out[i].Replay {
				t.Errorf("out[%d] = code %q replay %v, want a replay", i, out[i].Code, out[i].Replay)
			}
			if d := orderDiff(out[i].Order, out[0].Order); d != "" {
				t.Errorf("out[%d] differs from the first:\n%s", i, d)
			}
		}
		if rem != 8 {
			t.Errorf("remaining = %d, want 8", rem)
		}
		if d := ordersDiff(e.orders(s.ID), []surge.Order{out[0].Order, out[1].Order}); d != "" {
			t.Errorf("Orders:\n%s", d)
		}
		e.wantKey(s.ID, "u1", "k", out[0].Order)
	})

	t.Run("IndependentUsersAndNoKey", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 10, 2)
		e.createSale(s)
		// The key belongs to the user; without a key nothing is deduplicated.
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buyKey("u2", "k", 1), buy("u3", 1), buy("u3", 1))
		ids := map[string]bool{}
		for i, o := range out {
			if o.Code != surge.CodeReserved || o.Replay {
				t.Errorf("out[%d] = code %q replay %v, want a new reservation", i, o.Code, o.Replay)
			}
			ids[o.Order.ID] = true
		}
		if len(ids) != 4 || rem != 6 {
			t.Errorf("%d distinct orders, remaining %d; want 4 and 6", len(ids), rem)
		}
		e.wantKey(s.ID, "u1", "k", out[0].Order)
		e.wantKey(s.ID, "u2", "k", out[1].Order)
	})

	t.Run("AfterSoldOutEndedAndCancel", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 1, 1, endsAt(at(time.Hour)))
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 1))
		out, _ := e.reserve(s.ID, at(time.Second), buyKey("u2", "k", 1))
		if out[0].Code != surge.CodeSoldOut {
			t.Fatalf("another buyer = %q, want sold_out", out[0].Code)
		}
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k", 1), first)
		e.wantReplay(s.ID, at(2*time.Hour), buyKey("u1", "k", 1), first)
		// A replay is the first answer, even once the order moved on.
		e.cancel(first.ID, at(30*time.Second))
		e.wantReplay(s.ID, at(time.Minute), buyKey("u1", "k", 1), first)
		e.wantKey(s.ID, "u1", "k", first)
		e.wantRemaining(s.ID, 1)
		if n := len(e.orders(s.ID)); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
	})

	t.Run("Mismatch", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 3, endsAt(at(time.Hour)))
		e.createSale(s)
		// In one batch: the first request is reserved, the same key with
		// another quantity is refused, the same request replays.
		out, rem := e.reserve(s.ID, at(0), buyKey("u1", "k", 1), buyKey("u1", "k", 2), buyKey("u1", "k", 1))
		if out[0].Code != surge.CodeReserved || out[0].Replay {
			t.Fatalf("first = %+v, want a new reservation", out[0])
		}
		first := out[0].Order
		if out[1].Code != surge.CodeIdempotencyMismatch || out[1].Replay {
			t.Errorf("same batch, other quantity = code %q replay %v, want idempotency_mismatch", out[1].Code, out[1].Replay)
		}
		if out[2].Code != surge.CodeReserved || !out[2].Replay || orderDiff(out[2].Order, first) != "" {
			t.Errorf("same batch, same request = %+v, want a replay of %+v", out[2], first)
		}
		if rem != 2 {
			t.Errorf("remaining = %d, want 2", rem)
		}
		// Later, sold out, cancelled, ended, reopened: always refused,
		// while another user's same key is another purchase.
		e.wantMismatch(s.ID, at(time.Second), buyKey("u1", "k", 2))
		e.reserveOne(s.ID, at(time.Second), buyKey("u2", "k", 2))
		e.wantMismatch(s.ID, at(2*time.Second), buyKey("u1", "k", 2))
		e.cancel(first.ID, at(3*time.Second))
		e.wantMismatch(s.ID, at(4*time.Second), buyKey("u1", "k", 2))
		e.wantMismatch(s.ID, at(2*time.Hour), buyKey("u1", "k", 3))
		e.reopen()
		e.wantMismatch(s.ID, at(2*time.Hour), buyKey("u1", "k", 2))
		e.wantReplay(s.ID, at(2*time.Hour), buyKey("u1", "k", 1), first)
		if n := len(e.orders(s.ID)); n != 2 {
			t.Errorf("%d orders, want 2", n)
		}
	})

	// A key answers its first reservation forever: long after the order
	// ended (a store may keep old keys out of memory, never forget them),
	// sold out, ended, and after a restart.
	t.Run("LongAfter", func(t *testing.T) {
		e := newEnv(t, h)
		open := newSale(t, "open", 2, 2)
		ended := newSale(t, "ended", 2, 2, endsAt(at(48*time.Hour)))
		e.createSale(open, ended)
		cancelled := e.reserveOne(open.ID, at(0), buyKey("u1", "k1", 1))
		expired := e.reserveOne(open.ID, at(0), buyKey("u1", "k2", 1))
		e.cancel(cancelled.ID, at(time.Second))
		e.wantExpire(expired.ExpiresAt, expired)
		inEnded := e.reserveOne(ended.ID, at(0), buyKey("u1", "k1", 2))
		e.cancel(inEnded.ID, at(time.Second))
		late := at(30 * 24 * time.Hour)
		e.wantExpire(at(72 * time.Hour))
		e.wantExpire(late)
		check := func() {
			t.Helper()
			e.wantReplay(open.ID, late, buyKey("u1", "k1", 1), cancelled)
			e.wantReplay(open.ID, late, buyKey("u1", "k2", 1), expired)
			e.wantMismatch(open.ID, late, buyKey("u1", "k1", 2))
			e.wantReplay(ended.ID, late, buyKey("u1", "k1", 2), inEnded)
			e.wantMismatch(ended.ID, late, buyKey("u1", "k1", 1))
		}
		check()
		e.wantRemaining(open.ID, 2)
		// Sold out: the old keys still replay, and their replays (one
		// batch with a new key) take nothing.
		out, _ := e.reserve(open.ID, late, buyKey("u1", "k1", 1), buyKey("u2", "new", 2), buyKey("u1", "k2", 1))
		if !out[0].Replay || !out[2].Replay || out[1].Code != surge.CodeReserved || out[1].Replay {
			t.Errorf("replays around a new order = %+v", out)
		}
		e.wantRemaining(open.ID, 0)
		check()
		e.reopen()
		check()
		e.wantKey(open.ID, "u2", "new", out[1].Order)
		if n := len(e.orders(open.ID)); n != 3 {
			t.Errorf("%d orders, want 3", n)
		}
		if n := len(e.orders(ended.ID)); n != 1 {
			t.Errorf("%d orders in the ended sale, want 1", n)
		}
	})

	t.Run("AfterReopen", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 1)
		e.createSale(s)
		first := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 1))
		e.reopen()
		e.wantKey(s.ID, "u1", "k", first)
		e.wantReplay(s.ID, at(time.Second), buyKey("u1", "k", 1), first)
		e.wantRemaining(s.ID, 2)
	})
}

// ---- cancel and pay ----

func testCancel(t *testing.T, h Harness) {
	t.Run("ReturnsUnits", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
		other := e.reserveOne(s.ID, at(0), buy("u2", 1))
		out, _ := e.reserve(s.ID, at(0), buy("u1", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Fatalf("over the limit = %q, want limit_reached", out[0].Code)
		}
		got := e.cancel(o.ID, at(time.Second))
		want := withStatus(o, surge.OrderCancelled)
		if d := orderDiff(got, want); d != "" {
			t.Errorf("Cancel:\n%s", d)
		}
		if d := orderDiff(e.order(o.ID), want); d != "" {
			t.Errorf("Order after Cancel:\n%s", d)
		}
		e.wantRemaining(s.ID, 3)
		// The units are the user's to buy again, up to the limit.
		again := e.reserveOne(s.ID, at(2*time.Second), buy("u1", 2))
		if again.ID == o.ID {
			t.Errorf("new order reuses the cancelled id %s", o.ID)
		}
		e.wantRemaining(s.ID, 1)
		if d := orderDiff(e.order(other.ID), other); d != "" {
			t.Errorf("another user's order changed:\n%s", d)
		}
	})

	t.Run("Twice", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 2))
		e.cancel(o.ID, at(time.Second))
		_, err := e.s.Cancel(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "second Cancel", err, surge.ErrNotCancellable)
		e.wantRemaining(s.ID, 4) // returned once, not twice
	})

	t.Run("Unknown", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 4, 2)
		e.createSale(s)
		e.reserveOne(s.ID, at(0), buy("u1", 1))
		_, err := e.s.Cancel(e.ctx, "o_missing", at(0))
		wantErr(t, "Cancel of an unknown order", err, surge.ErrOrderNotFound)
		_, err = e.s.Pay(e.ctx, "o_missing", at(0))
		wantErr(t, "Pay of an unknown order", err, surge.ErrOrderNotFound)
		_, err = e.s.Order(e.ctx, "o_missing")
		wantErr(t, "Order of an unknown order", err, surge.ErrOrderNotFound)
		e.wantRemaining(s.ID, 3)
	})
}

func testPay(t *testing.T, h Harness) {
	t.Run("KeepsUnits", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
		got := e.pay(o.ID, at(time.Second))
		want := withStatus(o, surge.OrderPaid)
		if d := orderDiff(got, want); d != "" {
			t.Errorf("Pay:\n%s", d)
		}
		if d := orderDiff(e.order(o.ID), want); d != "" {
			t.Errorf("Order after Pay:\n%s", d)
		}
		e.wantRemaining(s.ID, 1)
		out, _ := e.reserve(s.ID, at(2*time.Second), buy("u1", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Errorf("paid units no longer count toward the limit: %q, want limit_reached", out[0].Code)
		}
		// A paid order is final: its hold no longer runs.
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(s.ID, 1)
	})

	t.Run("Twice", func(t *testing.T) {
		e := newEnv(t, h)
		s := newSale(t, "s", 3, 2)
		e.createSale(s)
		o := e.reserveOne(s.ID, at(0), buy("u1", 1))
		e.pay(o.ID, at(time.Second))
		_, err := e.s.Pay(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "second Pay", err, surge.ErrNotPayable)
		_, err = e.s.Cancel(e.ctx, o.ID, at(2*time.Second))
		wantErr(t, "Cancel of a paid order", err, surge.ErrNotCancellable)
		if got := e.order(o.ID).Status; got != surge.OrderPaid {
			t.Errorf("status = %q, want paid", got)
		}
		e.wantRemaining(s.ID, 2)
	})
}

// testTransitions checks every action on every status: only a reserved
// order moves, and a refused action changes nothing.
func testTransitions(t *testing.T, h Harness) {
	cases := []struct {
		from surge.OrderStatus
		act  string // Cancel or Pay
		err  error  // nil: allowed
		to   surge.OrderStatus
	}{
		{surge.OrderReserved, "Cancel", nil, surge.OrderCancelled},
		{surge.OrderReserved, "Pay", nil, surge.OrderPaid},
		{surge.OrderPaid, "Cancel", surge.ErrNotCancellable, surge.OrderPaid},
		{surge.OrderPaid, "Pay", surge.ErrNotPayable, surge.OrderPaid},
		{surge.OrderCancelled, "Cancel", surge.ErrNotCancellable, surge.OrderCancelled},
		{surge.OrderCancelled, "Pay", surge.ErrNotPayable, surge.OrderCancelled},
		{surge.OrderExpired, "Cancel", surge.ErrNotCancellable, surge.OrderExpired},
		{surge.OrderExpired, "Pay", surge.ErrNotPayable, surge.OrderExpired},
	}
	for _, tc := range cases {
		name := tc.act
		t.Run(name+"_"+string(tc.from), func(t *testing.T) {
			e := newEnv(t, h)
			s := newSale(t, "s", 5, 2)
			e.createSale(s)
			o := e.reserveOne(s.ID, at(0), buy("u1", 2))
			switch tc.from {
			case surge.OrderPaid:
				e.pay(o.ID, at(time.Second))
			case surge.OrderCancelled:
				e.cancel(o.ID, at(time.Second))
			case surge.OrderExpired:
				e.wantExpire(o.ExpiresAt, o)
			}
			before := e.remaining(s.ID)
			now := o.ExpiresAt.Add(-time.Millisecond) // the last moment of the hold
			var (
				got surge.Order
				err error
			)
			if tc.act == "Cancel" {
				got, err = e.s.Cancel(e.ctx, o.ID, now)
			} else {
				got, err = e.s.Pay(e.ctx, o.ID, now)
			}
			want := withStatus(o, tc.to)
			if tc.err != nil {
				wantErr(t, name, err, tc.err)
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			} else if d := orderDiff(got, want); d != "" {
				t.Errorf("%s returned:\n%s", name, d)
			}
			if d := orderDiff(e.order(o.ID), want); d != "" {
				t.Errorf("Order after %s:\n%s", name, d)
			}
			wantRem := before
			if tc.err == nil && !tc.to.Live() {
				wantRem += o.Quantity
			}
			e.wantRemaining(s.ID, wantRem)
		})
	}
}

// testHoldEnd: a hold ends at ExpiresAt whether or not Expire has run, so
// paying or cancelling from then on is refused, and the units come back
// exactly once.
func testHoldEnd(t *testing.T, h Harness) {
	for _, act := range []string{"Cancel", "Pay"} {
		for _, after := range []time.Duration{0, time.Millisecond, time.Hour} {
			t.Run(fmt.Sprintf("%s_%v", act, after), func(t *testing.T) {
				e := newEnv(t, h)
				s := newSale(t, "s", 5, 2)
				e.createSale(s)
				o := e.reserveOne(s.ID, at(0), buyKey("u1", "k", 2))
				now := o.ExpiresAt.Add(after)
				var err error
				if act == "Cancel" {
					_, err = e.s.Cancel(e.ctx, o.ID, now)
					wantErr(t, "Cancel at or after ExpiresAt", err, surge.ErrNotCancellable)
				} else {
					_, err = e.s.Pay(e.ctx, o.ID, now)
					wantErr(t, "Pay at or after ExpiresAt", err, surge.ErrNotPayable)
				}
				// The store may expire the order at once or leave it
				// to Expire; either way it ends expired, never paid
				// or cancelled, with its units back once.
				if st := e.order(o.ID).Status; st != surge.OrderReserved && st != surge.OrderExpired {
					t.Errorf("status after a refused %s = %q, want reserved or expired", act, st)
				}
				e.expire(now)
				if d := orderDiff(e.order(o.ID), withStatus(o, surge.OrderExpired)); d != "" {
					t.Errorf("Order after Expire:\n%s", d)
				}
				e.wantRemaining(s.ID, 5)
				e.wantExpire(now.Add(time.Hour))
				e.wantRemaining(s.ID, 5)
				e.wantReplay(s.ID, now, buyKey("u1", "k", 2), o)
			})
		}
	}
}

// ---- expire ----

func testExpire(t *testing.T, h Harness) {
	t.Run("DueOnly", func(t *testing.T) {
		e := newEnv(t, h)
		a := newSale(t, "a", 10, 3)
		b := newSale(t, "b", 10, 3, holdFor(30))
		e.createSale(a, b)
		// a holds 60 s, b 30 s: due times interleave across sales.
		a0 := e.reserveOne(a.ID, at(0), buyKey("u1", "k", 2))
		paid := e.reserveOne(a.ID, at(0), buy("u2", 1))
		cancelled := e.reserveOne(a.ID, at(0), buy("u3", 1))
		a10 := e.reserveOne(a.ID, at(10*time.Second), buy("u4", 3))
		b30 := e.reserveOne(b.ID, at(30*time.Second), buy("u1", 1))
		b45 := e.reserveOne(b.ID, at(45*time.Second), buy("u2", 2))
		e.pay(paid.ID, at(time.Second))
		e.cancel(cancelled.ID, at(time.Second))
		e.wantRemaining(a.ID, 10-2-1-3)
		e.wantRemaining(b.ID, 7)

		e.wantExpire(at(hold - time.Millisecond))
		e.wantExpire(at(hold), a0, b30) // due exactly at ExpiresAt
		e.wantExpire(at(hold))          // exactly once
		e.wantRemaining(a.ID, 6)
		e.wantRemaining(b.ID, 8)
		e.wantExpire(at(80*time.Second), a10, b45)
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(a.ID, 9) // only the paid unit is still held
		e.wantRemaining(b.ID, 10)

		for _, o := range []surge.Order{a0, a10, b30, b45} {
			if d := orderDiff(e.order(o.ID), withStatus(o, surge.OrderExpired)); d != "" {
				t.Errorf("Order(%s) after expiry:\n%s", o.ID, d)
			}
		}
		if got := e.order(paid.ID).Status; got != surge.OrderPaid {
			t.Errorf("paid order is %q, want paid", got)
		}
		if got := e.order(cancelled.ID).Status; got != surge.OrderCancelled {
			t.Errorf("cancelled order is %q, want cancelled", got)
		}
		// Expired units are the user's to buy again; the key still replays.
		e.reserveOne(a.ID, at(25*time.Hour), buy("u1", 2))
		e.wantReplay(a.ID, at(25*time.Hour), buyKey("u1", "k", 2), a0)
	})

	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, h)
		e.wantExpire(at(time.Hour))
		e.createSale(newSale(t, "s", 1, 1))
		e.wantExpire(at(time.Hour))
	})
}

// ---- reading orders ----

func testOrders(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a := newSale(t, "a", 10, 2)
	b := newSale(t, "b", 10, 2)
	empty := newSale(t, "empty", 10, 2)
	e.createSale(a, b, empty)
	// Interleaved across sales, batches and statuses.
	out, _ := e.reserve(a.ID, at(0), buy("u1", 1), buyKey("u2", "k", 2), buy("u1", 1))
	b1 := e.reserveOne(b.ID, at(0), buy("u1", 1))
	a4 := e.reserveOne(a.ID, at(time.Second), buy("u3", 1))
	b2 := e.reserveOne(b.ID, at(2*time.Second), buy("u2", 2))
	a1, a2, a3 := out[0].Order, out[1].Order, out[2].Order
	e.pay(a2.ID, at(3*time.Second))
	e.cancel(a3.ID, at(3*time.Second))
	e.cancel(b1.ID, at(3*time.Second))
	e.wantExpire(at(hold), a1)

	wantA := []surge.Order{
		withStatus(a1, surge.OrderExpired),
		withStatus(a2, surge.OrderPaid),
		withStatus(a3, surge.OrderCancelled),
		a4,
	}
	wantB := []surge.Order{withStatus(b1, surge.OrderCancelled), b2}

	t.Run("Order", func(t *testing.T) {
		e := e.on(t)
		for _, want := range append(slices.Clone(wantA), wantB...) {
			if d := orderDiff(e.order(want.ID), want); d != "" {
				t.Errorf("Order(%s):\n%s", want.ID, d)
			}
		}
	})
	t.Run("CreationOrderAnyStatus", func(t *testing.T) {
		e := e.on(t)
		if d := ordersDiff(e.orders(a.ID), wantA); d != "" {
			t.Errorf("Orders(a):\n%s", d)
		}
		if d := ordersDiff(e.orders(b.ID), wantB); d != "" {
			t.Errorf("Orders(b):\n%s", d)
		}
		if got := e.orders(empty.ID); len(got) != 0 {
			t.Errorf("Orders of a sale without orders = %v", got)
		}
	})
	t.Run("UnknownSale", func(t *testing.T) {
		calls := 0
		err := e.s.Orders(e.ctx, "nope", func(surge.Order) error { calls++; return nil })
		wantErr(t, "Orders of an unknown sale", err, surge.ErrSaleNotFound)
		if calls != 0 {
			t.Errorf("fn called %d times for an unknown sale", calls)
		}
	})
	t.Run("StopsOnError", func(t *testing.T) {
		stop := errors.New("stop")
		var seen []string
		err := e.s.Orders(e.ctx, a.ID, func(o surge.Order) error {
			seen = append(seen, o.ID)
			if len(seen) == 2 {
				return stop
			}
			return nil
		})
		wantErr(t, "Orders with a failing fn", err, stop)
		if want := []string{a1.ID, a2.ID}; !slices.Equal(seen, want) {
			t.Errorf("fn saw %v, want %v and then nothing", seen, want)
		}
	})
}

// ---- durability and recovery ----

// snapshot is everything observable of a dataset without changing it.
type snapshot struct {
	sales     []surge.Sale
	orders    map[string][]surge.Order
	remaining map[string]int64
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	sn := snapshot{sales: e.sales(), orders: map[string][]surge.Order{}, remaining: map[string]int64{}}
	for _, s := range sn.sales {
		sn.orders[s.ID] = e.orders(s.ID)
		sn.remaining[s.ID] = e.remaining(s.ID)
	}
	return sn
}

func (e *env) wantSnapshot(want snapshot) {
	e.t.Helper()
	got := e.snapshot()
	if d := salesDiff(got.sales, want.sales); d != "" {
		e.t.Errorf("sales after reopen:\n%s", d)
	}
	for _, s := range want.sales {
		if d := ordersDiff(got.orders[s.ID], want.orders[s.ID]); d != "" {
			e.t.Errorf("orders of %s after reopen:\n%s", s.ID, d)
		}
		if got.remaining[s.ID] != want.remaining[s.ID] {
			e.t.Errorf("Remaining(%s) after reopen = %d, want %d", s.ID, got.remaining[s.ID], want.remaining[s.ID])
		}
	}
}

func testRecovery(t *testing.T, h Harness) {
	t.Run("Empty", func(t *testing.T) {
		e := newEnv(t, h)
		e.reopen()
		if ss := e.sales(); len(ss) != 0 {
			t.Errorf("Sales = %v, want none", ss)
		}
		e.wantExpire(at(time.Hour))
	})

	t.Run("Everything", func(t *testing.T) {
		e := newEnv(t, h)
		a := newSale(t, "a", 10, 3, endsAt(at(time.Hour)), priced(500, "GBP"))
		b := newSale(t, "b", 2, 1, createdAt(at(time.Second)))
		e.createSale(a, b)

		a1 := e.reserveOne(a.ID, at(0), buyKey("u1", "k1", 2))
		a4 := e.reserveOne(a.ID, at(0), buyKey("u4", "k4", 1))
		e.pay(a1.ID, at(time.Second))
		e.wantExpire(at(hold), a4)
		a1b := e.reserveOne(a.ID, at(61*time.Second), buyKey("u1", "k1b", 1)) // u1 now at the limit
		a2 := e.reserveOne(a.ID, at(61*time.Second), buyKey("u2", "k2", 2))
		e.cancel(a2.ID, at(62*time.Second))
		a3 := e.reserveOne(a.ID, at(70*time.Second), buy("u3", 1))
		out, _ := e.reserve(b.ID, at(61*time.Second), buyKey("u1", "k1", 1), buy("u2", 1), buy("u3", 1))
		if out[2].Code != surge.CodeSoldOut {
			t.Fatalf("fixture: b should be sold out, got %q", out[2].Code)
		}
		b1, b2 := out[0].Order, out[1].Order
		want := e.snapshot()
		if want.remaining[a.ID] != 6 || want.remaining[b.ID] != 0 {
			t.Fatalf("fixture: remaining %v, want a:6 b:0", want.remaining)
		}

		e.reopen()
		e.wantSnapshot(want)
		// Idempotency keys answer the first reply, whatever became of it.
		for _, k := range []struct {
			sale, user, key string
			first           surge.Order
		}{
			{a.ID, "u1", "k1", a1}, {a.ID, "u4", "k4", a4}, {a.ID, "u1", "k1b", a1b},
			{a.ID, "u2", "k2", a2}, {b.ID, "u1", "k1", b1},
		} {
			e.wantKeyOrDisk(k.sale, k.user, k.key, k.first)
			e.wantReplay(k.sale, at(90*time.Second), buyKey(k.user, k.key, k.first.Quantity), k.first)
		}
		// Held units per user: paid and reserved both count.
		out, _ = e.reserve(a.ID, at(90*time.Second), buy("u1", 1), buy("u2", 3), buy("u2", 1))
		if out[0].Code != surge.CodeLimitReached {
			t.Errorf("u1 holds 3 of 3 but got %q, want limit_reached", out[0].Code)
		}
		if out[1].Code != surge.CodeReserved || out[2].Code != surge.CodeLimitReached {
			t.Errorf("u2's cancelled units were restored as held: got %q, %q", out[1].Code, out[2].Code)
		}
		a5 := out[1].Order
		out, _ = e.reserve(b.ID, at(90*time.Second), buy("u3", 1))
		if out[0].Code != surge.CodeSoldOut || out[0].Remaining != 0 {
			t.Errorf("b after reopen: %+v, want sold_out with 0 left", out[0])
		}
		_, err := e.s.Cancel(e.ctx, a1.ID, at(90*time.Second))
		wantErr(t, "Cancel of a paid order after reopen", err, surge.ErrNotCancellable)
		_, err = e.s.Pay(e.ctx, a4.ID, at(90*time.Second))
		wantErr(t, "Pay of an expired order after reopen", err, surge.ErrNotPayable)
		_, err = e.s.Cancel(e.ctx, a2.ID, at(90*time.Second))
		wantErr(t, "Cancel of a cancelled order after reopen", err, surge.ErrNotCancellable)

		// Pending holds expire on schedule, once.
		e.wantExpire(at(121*time.Second - time.Millisecond))
		e.wantExpire(at(121*time.Second), a1b, b1, b2)
		e.wantExpire(at(130*time.Second), a3)
		e.wantRemaining(a.ID, 10-2-3) // a1 (paid) and a5
		e.wantRemaining(b.ID, 2)

		want = e.snapshot()
		e.reopen()
		e.wantSnapshot(want)
		e.wantExpire(at(24*time.Hour), a5)
		e.wantExpire(at(24 * time.Hour))
		e.wantRemaining(a.ID, 8)
	})
}

// ---- concurrency ----

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
				out, rem, err := e.s.Reserve(e.ctx, s.ID, batch, at(0))
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
		seen := 0
		for _, s := range sales {
			var live int64
			perUser := map[string]int64{}
			keys := map[[2]string]string{}
			for _, o := range e.orders(s.ID) {
				seen++
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
		if seen != len(first) {
			t.Errorf("store has %d orders, calls created %d", seen, len(first))
		}
	}
	t.Run("Invariants", check)
	e.reopen()
	t.Run("InvariantsAfterReopen", check)
}
