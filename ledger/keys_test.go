package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// openSale is open from t0 with no end: stock units, limit per user, 60 s hold.
func openSale(t *testing.T, stock, limit int64) surge.Sale {
	t.Helper()
	id, name, hold := "s1", "Open", int64(60)
	s, err := surge.NewSale(surge.SaleInput{
		ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &t0, HoldSeconds: &hold,
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeyMismatch(t *testing.T) {
	cases := []struct {
		name      string
		first     surge.Purchase
		sameBatch bool // retry decided in the first's batch
		retry     surge.Purchase
		want      surge.Code
		replay    bool
	}{
		{"LaterSameQuantity", buyKey("a", "k", 2), false, buyKey("a", "k", 2), surge.CodeReserved, true},
		{"LaterOtherQuantity", buyKey("a", "k", 2), false, buyKey("a", "k", 1), surge.CodeIdempotencyMismatch, false},
		{"LaterMoreThanLeft", buyKey("a", "k", 1), false, buyKey("a", "k", 2), surge.CodeIdempotencyMismatch, false},
		{"SameBatchSameQuantity", buyKey("a", "k", 1), true, buyKey("a", "k", 1), surge.CodeReserved, true},
		{"SameBatchOtherQuantity", buyKey("a", "k", 1), true, buyKey("a", "k", 2), surge.CodeIdempotencyMismatch, false},
		{"OtherUserOtherQuantity", buyKey("a", "k", 2), false, buyKey("b", "k", 1), surge.CodeReserved, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := New(openSale(t, 5, 2))
			var first, got surge.Outcome
			if tc.sameBatch {
				outs, tent := l.Decide([]surge.Purchase{tc.first, tc.retry}, t0, ids())
				l.Commit(tent)
				first, got = outs[0], outs[1]
			} else {
				outs, tent := l.Decide([]surge.Purchase{tc.first}, t0, ids())
				l.Commit(tent)
				first = outs[0]
				outs, tent = l.Decide([]surge.Purchase{tc.retry}, t0.Add(time.Second), ids())
				l.Commit(tent)
				got = outs[0]
			}
			if first.Code != surge.CodeReserved || first.Replay {
				t.Fatalf("first = %+v, want a new reservation", first)
			}
			if got.Code != tc.want || got.Replay != tc.replay {
				t.Errorf("retry = code %q replay %v, want %q replay %v", got.Code, got.Replay, tc.want, tc.replay)
			}
			if tc.replay && got.Order != first.Order {
				t.Errorf("replay = %+v, want the first answer %+v", got.Order, first.Order)
			}
			want := 5 - tc.first.Quantity
			if tc.want == surge.CodeReserved && !tc.replay {
				want -= tc.retry.Quantity
			}
			if r := l.Remaining(); r != want {
				t.Errorf("remaining = %d, want %d: a mismatch or replay takes nothing", r, want)
			}
			// The key still answers its first request.
			if o, st := l.LookupKey(tc.first.UserID, tc.first.IdempotencyKey); st != surge.KeyDone || o != first.Order {
				t.Errorf("LookupKey = %v %+v, want KeyDone %+v", st, o, first.Order)
			}
		})
	}
}

// TestForgetBoundsKeys runs buy-and-cancel with a fresh key every minute for
// far longer than the window: the key entries in memory stay bounded by the
// window plus the live orders, and the forgotten ones say so.
func TestForgetBoundsKeys(t *testing.T) {
	const window = time.Hour
	l := New(openSale(t, 3, 3))
	newID := ids()
	paid := commit(t, l, t0, newID, buyKey("a", "paid", 1))[0]
	l.Settle(paid.ID, surge.OrderPaid)
	held := commit(t, l, t0, newID, buyKey("a", "held", 1))[0] // stays reserved
	var first surge.Order
	const cycles = 24 * 60
	for i := range cycles {
		now := t0.Add(time.Duration(i) * time.Minute)
		o := commit(t, l, now, newID, buyKey("a", fmt.Sprintf("k%d", i), 1))[0]
		if i == 0 {
			first = o
		}
		if !l.Settle(o.ID, surge.OrderCancelled) {
			t.Fatalf("cycle %d: cancel refused", i)
		}
		l.Forget(now.Add(-window))
		// Live orders, plus a key per minute of the window and the
		// boundary minute.
		if n := l.Keys(); n > 2+61 {
			t.Fatalf("cycle %d: %d key entries in memory, want at most %d", i, n, 2+61)
		}
	}
	if n := l.Keys(); n < 60 {
		t.Errorf("%d key entries after the loop, want the last hour's (60+)", n)
	}
	if r := l.Remaining(); r != 1 {
		t.Errorf("remaining = %d, want 1", r)
	}
	// Live orders keep their keys however old.
	for _, o := range []surge.Order{paid, held} {
		if got, st := l.LookupKey("a", o.IdempotencyKey); st != surge.KeyDone || got.ID != o.ID {
			t.Errorf("live key %s = %v %+v, want KeyDone", o.IdempotencyKey, st, got)
		}
	}
	// A forgotten key, and any key the sale never saw, may be on disk now:
	// only the store can tell.
	for _, k := range []string{"k0", "never-used"} {
		if _, st := l.LookupKey("a", k); st != surge.KeyMaybe {
			t.Errorf("LookupKey(%s) = %v, want KeyMaybe", k, st)
		}
	}
	// Remembering the first order from disk answers it again, with the
	// same mismatch rule, until the next sweep drops it.
	onDisk := first
	onDisk.Status = surge.OrderCancelled
	l.Recall(onDisk)
	if got, st := l.LookupKey("a", "k0"); st != surge.KeyDone || got != first {
		t.Errorf("recalled key = %v %+v, want KeyDone %+v", st, got, first)
	}
	now := t0.Add(cycles * time.Minute)
	outs, tent := l.Decide([]surge.Purchase{buyKey("a", "k0", 1), buyKey("a", "k0", 2)}, now, newID)
	l.Commit(tent)
	if outs[0].Code != surge.CodeReserved || !outs[0].Replay || outs[0].Order != first {
		t.Errorf("replay of a recalled key = %+v, want the first answer %+v", outs[0], first)
	}
	if outs[1].Code != surge.CodeIdempotencyMismatch {
		t.Errorf("recalled key with another quantity = %q, want idempotency_mismatch", outs[1].Code)
	}
	before := l.Keys()
	l.Forget(t0.Add((cycles-1)*time.Minute - window)) // the loop's last cutoff
	if _, st := l.LookupKey("a", "k0"); st != surge.KeyMaybe || l.Keys() != before-1 {
		t.Errorf("after the next sweep: k0 = %v, %d keys; want KeyMaybe, %d", st, l.Keys(), before-1)
	}
}

func TestForgetOnlyDeadPastCutoff(t *testing.T) {
	l := New(openSale(t, 10, 10))
	newID := ids()
	if _, st := l.LookupKey("a", "never"); st != surge.KeyUnknown {
		t.Fatalf("fresh sale: unknown key = %v, want KeyUnknown", st)
	}
	os := commit(t, l, t0, newID, buyKey("a", "cancelled", 1), buyKey("a", "expired", 1), buyKey("a", "paid", 1), buyKey("a", "reserved", 1))
	late := commit(t, l, t0.Add(time.Minute), newID, buyKey("a", "late", 1))[0]
	l.Settle(os[0].ID, surge.OrderCancelled)
	l.Settle(os[1].ID, surge.OrderExpired)
	l.Settle(os[2].ID, surge.OrderPaid)
	l.Settle(late.ID, surge.OrderCancelled)
	l.Forget(t0.Add(-time.Nanosecond)) // before every order: nothing goes
	if n := l.Keys(); n != 5 {
		t.Fatalf("%d keys after a sweep before every order, want 5", n)
	}
	if _, st := l.LookupKey("a", "never"); st != surge.KeyUnknown {
		t.Errorf("nothing forgotten yet: unknown key = %v, want KeyUnknown", st)
	}
	l.Forget(t0) // orders created at or before the cutoff go, if dead
	want := map[string]surge.KeyState{
		"cancelled": surge.KeyMaybe, "expired": surge.KeyMaybe,
		"paid": surge.KeyDone, "reserved": surge.KeyDone, "late": surge.KeyDone,
		"never": surge.KeyMaybe,
	}
	for k, w := range want {
		if _, st := l.LookupKey("a", k); st != w {
			t.Errorf("LookupKey(%s) = %v, want %v", k, st, w)
		}
	}
}

// TestRestoreKeyWindow: a restart loads the keys of live orders and of
// orders created after the cutoff, and no others.
func TestRestoreKeyWindow(t *testing.T) {
	sale := openSale(t, 10, 10)
	order := func(id, key string, st surge.OrderStatus, created time.Duration) surge.Order {
		return surge.Order{ID: id, SaleID: sale.ID, UserID: "a", Quantity: 1, Status: st,
			IdempotencyKey: key, CreatedAt: t0.Add(created), ExpiresAt: t0.Add(created + time.Minute)}
	}
	cutoff := t0.Add(time.Hour)
	stored := []struct {
		o    surge.Order
		want surge.KeyState
	}{
		{order("o1", "old-paid", surge.OrderPaid, 0), surge.KeyDone},
		{order("o2", "old-reserved", surge.OrderReserved, 0), surge.KeyDone},
		{order("o3", "old-cancelled", surge.OrderCancelled, 0), surge.KeyMaybe},
		{order("o4", "old-expired", surge.OrderExpired, time.Hour), surge.KeyMaybe}, // at the cutoff
		{order("o5", "new-cancelled", surge.OrderCancelled, 2*time.Hour), surge.KeyDone},
	}
	l := New(sale)
	for _, s := range stored {
		l.Restore(s.o, cutoff)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, s := range stored {
		if _, st := l.LookupKey("a", s.o.IdempotencyKey); st != s.want {
			t.Errorf("%s: LookupKey = %v, want %v", s.o.IdempotencyKey, st, s.want)
		}
	}
	if n := l.Keys(); n != 3 {
		t.Errorf("%d keys loaded, want 3", n)
	}
	if r := l.Remaining(); r != 8 {
		t.Errorf("remaining = %d, want 8", r)
	}
	// A restored dead key in the window is dropped once the window passes.
	l.Forget(t0.Add(2 * time.Hour))
	if _, st := l.LookupKey("a", "new-cancelled"); st != surge.KeyMaybe {
		t.Errorf("new-cancelled after its window = %v, want KeyMaybe", st)
	}
}

// TestManyPages restores enough orders to fill several pages of records
// and holders and several arena chunks, with strings of varied lengths
// (a chunk ends where a record's strings would not fit), then reads every
// one back: by key, by id while reserved, and the holder's units; then
// settles and forgets most of them so that compaction moves the strings
// of the rest into a new arena, and reads the rest back again.
func TestManyPages(t *testing.T) {
	n := 3*pageLen + 123
	if testing.Short() {
		n = pageLen + 7
	}
	sale := openSale(t, int64(2*n), 1)
	l := New(sale)
	order := func(i int) surge.Order {
		created := t0.Add(time.Duration(i) * time.Millisecond)
		o := surge.Order{
			ID: fmt.Sprintf("o_%026d", i), SaleID: sale.ID, UserID: fmt.Sprintf("u%0*d", 8+i%50, i), Quantity: 1,
			Status: surge.OrderReserved, IdempotencyKey: fmt.Sprintf("k%0*d", 1+i%200, i),
			CreatedAt: created, ExpiresAt: created.Add(sale.Hold()),
		}
		if i%10 == 0 {
			o.Status = surge.OrderPaid
		}
		return o
	}
	for i := range n {
		l.Restore(order(i), t0)
	}
	if len(l.st.arena.c) < 2 || len(l.st.recs.p) < 2 || len(l.st.users.p) < 2 {
		t.Fatalf("%d chunks, %d record pages, %d holder pages: the test does not cross a boundary",
			len(l.st.arena.c), len(l.st.recs.p), len(l.st.users.p))
	}
	check := func(when string, i int) {
		t.Helper()
		want := order(i)
		got, st := l.LookupKey(want.UserID, want.IdempotencyKey)
		if st != surge.KeyDone || got.ID != want.ID || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("%s: order %d by key: %v %+v, want %+v", when, i, st, got, want)
		}
		if want.Status == surge.OrderReserved {
			if r, ok := l.Reserved(want.ID); !ok || r != want {
				t.Fatalf("%s: order %d by id: %v %+v, want %+v", when, i, ok, r, want)
			}
		}
		if h := l.Held(want.UserID); h != 1 {
			t.Fatalf("%s: %s holds %d, want 1", when, want.UserID, h)
		}
	}
	for i := range n {
		check("restored", i)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	// Cancel the reserved ones but every ninth, then forget the keys of
	// the cancelled: most strings become garbage.
	kept := func(i int) bool { return i%9 == 0 || i%10 == 0 }
	for i := range n {
		if !kept(i) && !l.Settle(order(i).ID, surge.OrderCancelled) {
			t.Fatalf("order %d not settled", i)
		}
	}
	before := l.st.compactions
	l.Forget(t0.Add(time.Duration(n) * time.Millisecond))
	if l.st.compactions == before {
		t.Fatal("the arena was not compacted")
	}
	for i := range n {
		if kept(i) {
			check("compacted", i)
		} else if _, st := l.LookupKey(order(i).UserID, order(i).IdempotencyKey); st == surge.KeyDone {
			t.Fatalf("the key of cancelled order %d is still in memory", i)
		}
	}
}
