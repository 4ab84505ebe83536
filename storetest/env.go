package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

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
	out, rem, err := e.s.Reserve(e.ctx, saleID, batch, surge.At(now))
	// A shared store may refuse a batch for a moment with unavailable
	// (committing nothing), e.g. while it reinstalls a sale's live state
	// after a change; callers retry, and so does the suite, for a while.
	for try := 0; err != nil && surge.ErrorCode(err) == surge.CodeUnavailable && try < 100; try++ {
		time.Sleep(50 * time.Millisecond)
		out, rem, err = e.s.Reserve(e.ctx, saleID, batch, surge.At(now))
	}
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

// wantRefusal is wantErr for a refused Cancel or Pay, whose message must
// also say why: what the order became, as in the refusal's message.
func wantRefusal(t *testing.T, what string, err, target error, why string) {
	t.Helper()
	wantErr(t, what, err, target)
	if err != nil && !strings.Contains(err.Error(), why) {
		t.Errorf("%s: err = %v, want it to say %q", what, err, why)
	}
}
