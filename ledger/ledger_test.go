package ledger

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testSale is open from t0 to t0+1h, 5 units, 2 per user, 60 s hold.
func testSale(t *testing.T) surge.Sale {
	t.Helper()
	id, name := "s1", "Test"
	stock, limit, hold := int64(5), int64(2), int64(60)
	end := t0.Add(time.Hour)
	s, err := surge.NewSale(surge.SaleInput{
		ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit,
		StartsAt: &t0, EndsAt: &end, HoldSeconds: &hold,
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ids names orders o1, o2, ... so tests can predict them.
func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("o%d", n) }
}

func buy(user string, q int64) surge.Purchase { return surge.Purchase{UserID: user, Quantity: q} }

func buyKey(user, key string, q int64) surge.Purchase {
	return surge.Purchase{UserID: user, IdempotencyKey: key, Quantity: q}
}

// commit decides and commits a batch that must reserve every purchase.
func commit(t *testing.T, l *Sale, now time.Time, newID func() string, batch ...surge.Purchase) []surge.Order {
	t.Helper()
	outs, tent := l.Decide(batch, now, newID)
	for i, o := range outs {
		if o.Code != surge.CodeReserved || o.Replay {
			t.Fatalf("setup purchase %+v: %+v", batch[i], o)
		}
	}
	l.Commit(tent)
	return tent.Orders
}

// view is everything a Sale holds, to compare exactly.
type view struct {
	remaining int64
	held      map[string]int64
	keys      map[userKey]keyEntry
	reserved  map[string]surge.Order
}

func snapshot(l *Sale) view {
	s := view{
		remaining: l.Remaining(),
		held:      l.heldMap(),
		keys:      l.keyMap(),
		reserved:  l.reservedMap(),
	}
	return s
}

func TestDecide(t *testing.T) {
	type want struct {
		code   surge.Code
		replay bool
		left   int64  // Outcome.Remaining
		id     string // order id, for reservations and replays
	}
	r := func(id string) want { return want{code: surge.CodeReserved, id: id} }
	replay := func(id string) want { return want{code: surge.CodeReserved, replay: true, id: id} }
	rej := func(c surge.Code) want { return want{code: c} }
	cases := []struct {
		name      string
		prior     []surge.Purchase // committed at t0 first, as o1, o2, ...
		now       time.Time
		batch     []surge.Purchase
		want      []want
		remaining int64
		held      map[string]int64
	}{{
		name:      "Reserves",
		now:       t0,
		batch:     []surge.Purchase{buy("a", 2), buyKey("b", "k", 1)},
		want:      []want{r("o1"), r("o2")},
		remaining: 2,
		held:      map[string]int64{"a": 2, "b": 1},
	}, {
		name:      "SoldOutInOrder",
		prior:     []surge.Purchase{buy("a", 2), buy("b", 2)},
		now:       t0,
		batch:     []surge.Purchase{buy("c", 2), buy("c", 1), buy("d", 1)},
		want:      []want{{code: surge.CodeSoldOut, left: 1}, r("o3"), {code: surge.CodeSoldOut, left: 0}},
		remaining: 0,
		held:      map[string]int64{"a": 2, "b": 2, "c": 1},
	}, {
		name:      "LimitAcrossBatches",
		prior:     []surge.Purchase{buy("a", 1)},
		now:       t0,
		batch:     []surge.Purchase{buy("a", 2), buy("a", 1), buy("a", 1), buy("b", 2)},
		want:      []want{rej(surge.CodeLimitReached), r("o2"), rej(surge.CodeLimitReached), r("o3")},
		remaining: 1,
		held:      map[string]int64{"a": 2, "b": 2},
	}, {
		name:      "NotStarted",
		now:       t0.Add(-time.Millisecond),
		batch:     []surge.Purchase{buy("a", 1)},
		want:      []want{rej(surge.CodeNotStarted)},
		remaining: 5,
		held:      map[string]int64{},
	}, {
		name:      "Ended",
		prior:     []surge.Purchase{buy("a", 1)},
		now:       t0.Add(time.Hour),
		batch:     []surge.Purchase{buy("b", 1)},
		want:      []want{rej(surge.CodeEnded)},
		remaining: 4,
		held:      map[string]int64{"a": 1},
	}, {
		// The same key with another quantity is another request under a
		// used key: refused, whatever the stock and limit would allow.
		name:      "ReplayOfCommitted",
		prior:     []surge.Purchase{buyKey("a", "k", 1)},
		now:       t0.Add(time.Minute),
		batch:     []surge.Purchase{buyKey("a", "k", 1), buyKey("b", "k", 1), buyKey("a", "k2", 1), buyKey("a", "k", 2)},
		want:      []want{replay("o1"), r("o2"), r("o3"), rej(surge.CodeIdempotencyMismatch)},
		remaining: 2,
		held:      map[string]int64{"a": 2, "b": 1},
	}, {
		name:      "ReplayWithinBatch",
		now:       t0,
		batch:     []surge.Purchase{buyKey("a", "k", 1), buyKey("a", "k", 1), buy("a", 1), buyKey("a", "k", 1)},
		want:      []want{r("o1"), replay("o1"), r("o2"), replay("o1")},
		remaining: 3,
		held:      map[string]int64{"a": 2},
	}, {
		// A known key answers before the window and stock rules: a
		// retry must get the first answer even after the sale closed.
		name:      "ReplayAfterEndAndSoldOut",
		prior:     []surge.Purchase{buyKey("a", "k", 2), buy("b", 2), buy("c", 1)},
		now:       t0.Add(2 * time.Hour),
		batch:     []surge.Purchase{buyKey("a", "k", 2), buy("d", 1), buyKey("a", "k", 1)},
		want:      []want{replay("o1"), rej(surge.CodeEnded), rej(surge.CodeIdempotencyMismatch)},
		remaining: 0,
		held:      map[string]int64{"a": 2, "b": 2, "c": 1},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sale := testSale(t)
			l := New(sale)
			newID := ids()
			var prior []surge.Order
			if len(tc.prior) > 0 {
				prior = commit(t, l, t0, newID, tc.prior...)
			}
			// Sub-ms parts must be truncated away, yet not move the
			// window check across a boundary.
			now := tc.now.Add(500 * time.Microsecond)
			outs, tent := l.Decide(tc.batch, now, newID)
			if len(outs) != len(tc.batch) {
				t.Fatalf("%d outcomes for %d purchases", len(outs), len(tc.batch))
			}
			var created []surge.Order
			byID := map[string]surge.Order{}
			for _, o := range prior {
				byID[o.ID] = o
			}
			for i, w := range tc.want {
				got, p := outs[i], tc.batch[i]
				if got.Code != w.code || got.Replay != w.replay || got.Remaining != w.left || got.Order.ID != w.id {
					t.Errorf("out[%d] for %+v = {%q replay:%v left:%d id:%q}, want {%q replay:%v left:%d id:%q}",
						i, p, got.Code, got.Replay, got.Remaining, got.Order.ID, w.code, w.replay, w.left, w.id)
					continue
				}
				if w.code != surge.CodeReserved {
					continue
				}
				if w.replay {
					if first, ok := byID[w.id]; !ok || got.Order != first {
						t.Errorf("out[%d] replay = %+v, want the first answer %+v", i, got.Order, first)
					}
					continue
				}
				ts := now.Truncate(time.Millisecond)
				wantOrder := surge.Order{
					ID: w.id, SaleID: sale.ID, UserID: p.UserID, Quantity: p.Quantity,
					Status: surge.OrderReserved, IdempotencyKey: p.IdempotencyKey,
					CreatedAt: ts, ExpiresAt: ts.Add(60 * time.Second),
				}
				if got.Order != wantOrder {
					t.Errorf("out[%d].Order = %+v, want %+v", i, got.Order, wantOrder)
				}
				created = append(created, got.Order)
				byID[w.id] = got.Order
			}
			if !slices.Equal(tent.Orders, created) {
				t.Errorf("tentative orders = %+v, want %+v", tent.Orders, created)
			}
			if got := l.Remaining(); got != tc.remaining {
				t.Errorf("Remaining = %d, want %d", got, tc.remaining)
			}
			if held := l.heldMap(); !maps.Equal(held, tc.held) {
				t.Errorf("held = %v, want %v", held, tc.held)
			}
			// Decide reserves memory only: nothing awaits expiry before Commit.
			for _, o := range created {
				if _, ok := l.Reserved(o.ID); ok {
					t.Errorf("order %s reserved before Commit", o.ID)
				}
			}
			l.Commit(tent)
			for _, o := range created {
				if got, ok := l.Reserved(o.ID); !ok || got != o {
					t.Errorf("Reserved(%s) after Commit = %+v, %v", o.ID, got, ok)
				}
			}
		})
	}
}

func TestKeyLifecycle(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", keep), func(t *testing.T) {
			l := New(testSale(t))
			if _, st := l.LookupKey("a", "k"); st != surge.KeyUnknown {
				t.Fatalf("fresh key = %v, want KeyUnknown", st)
			}
			outs, tent := l.Decide([]surge.Purchase{buyKey("a", "k", 1)}, t0, ids())
			// Pending hides the order: it is not an answer until durable.
			if o, st := l.LookupKey("a", "k"); st != surge.KeyPending || o != (surge.Order{}) {
				t.Errorf("decided key = %v %+v, want KeyPending and no order", st, o)
			}
			if keep {
				l.Commit(tent)
				if o, st := l.LookupKey("a", "k"); st != surge.KeyDone || o != outs[0].Order {
					t.Errorf("committed key = %v %+v, want KeyDone %+v", st, o, outs[0].Order)
				}
			} else {
				l.Rollback(tent)
				if _, st := l.LookupKey("a", "k"); st != surge.KeyUnknown {
					t.Errorf("rolled back key = %v, want KeyUnknown", st)
				}
			}
			if _, st := l.LookupKey("b", "k"); st != surge.KeyUnknown {
				t.Errorf("another user's key = %v, want KeyUnknown", st)
			}
		})
	}
}

func TestRollback(t *testing.T) {
	cases := []struct {
		name  string
		prior []surge.Purchase
		batch []surge.Purchase
	}{
		{"NewUsers", nil, []surge.Purchase{buy("a", 2), buy("b", 1)}},
		{"ExistingHolder", []surge.Purchase{buy("a", 1), buyKey("b", "k", 1)}, []surge.Purchase{buy("a", 1), buy("b", 1)}},
		{"KeysAndReplays", []surge.Purchase{buyKey("a", "old", 1)},
			[]surge.Purchase{buyKey("a", "new", 1), buyKey("a", "new", 1), buyKey("a", "old", 1), buyKey("b", "new", 2)}},
		{"MixedRejections", []surge.Purchase{buy("a", 2)},
			[]surge.Purchase{buy("a", 1), buy("b", 2), buy("c", 2), buy("d", 1), buyKey("e", "k", 1)}},
		{"NothingReserved", []surge.Purchase{buy("a", 2), buy("b", 2), buy("c", 1)},
			[]surge.Purchase{buy("d", 1), buy("a", 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := New(testSale(t))
			newID := ids()
			if len(tc.prior) > 0 {
				commit(t, l, t0, newID, tc.prior...)
			}
			before := snapshot(l)
			first, tent := l.Decide(tc.batch, t0.Add(time.Second), newID)
			if reflect.DeepEqual(snapshot(l), before) != (len(tent.Orders) == 0) {
				t.Fatalf("Decide changed state: %v, reserved %d orders", !reflect.DeepEqual(snapshot(l), before), len(tent.Orders))
			}
			l.Rollback(tent)
			if after := snapshot(l); !reflect.DeepEqual(after, before) {
				t.Errorf("state after Rollback:\n got %+v\nwant %+v", after, before)
			}
			// Decisions after a rollback are as if the batch never ran.
			again, _ := l.Decide(tc.batch, t0.Add(time.Second), newID)
			for i := range first {
				if again[i].Code != first[i].Code || again[i].Replay != first[i].Replay || again[i].Remaining != first[i].Remaining {
					t.Errorf("out[%d] after rollback = %+v, first time %+v", i, again[i], first[i])
				}
			}
		})
	}
}

func TestSettle(t *testing.T) {
	cases := []struct {
		status    surge.OrderStatus
		remaining int64 // of 5, after a's 2 and b's 1 units
		heldA     int64
	}{
		{surge.OrderPaid, 2, 2},
		{surge.OrderCancelled, 4, 0},
		{surge.OrderExpired, 4, 0},
	}
	for _, tc := range cases {
		t.Run(string(tc.status), func(t *testing.T) {
			l := New(testSale(t))
			os := commit(t, l, t0, ids(), buyKey("a", "k", 2), buy("b", 1))
			a, b := os[0], os[1]
			if !l.Settle(a.ID, tc.status) {
				t.Fatalf("Settle(%s, %s) = false", a.ID, tc.status)
			}
			if got := l.Remaining(); got != tc.remaining {
				t.Errorf("Remaining = %d, want %d", got, tc.remaining)
			}
			if got := l.Held("a"); got != tc.heldA {
				t.Errorf("Held(a) = %d, want %d", got, tc.heldA)
			}
			if _, ok := l.heldMap()["a"]; ok != (tc.heldA > 0) {
				t.Errorf("held map keeps a user with nothing held: %v", l.heldMap())
			}
			if _, ok := l.Reserved(a.ID); ok {
				t.Errorf("order %s still reserved", a.ID)
			}
			// The idempotency key still answers the first reply.
			if o, st := l.LookupKey("a", "k"); st != surge.KeyDone || o != a {
				t.Errorf("LookupKey after Settle = %v %+v, want %+v", st, o, a)
			}
			// Only a reserved order settles, once.
			for _, st := range []surge.OrderStatus{surge.OrderPaid, surge.OrderCancelled, surge.OrderExpired} {
				if l.Settle(a.ID, st) {
					t.Errorf("second Settle(%s, %s) = true", a.ID, st)
				}
			}
			if l.Settle("o404", tc.status) {
				t.Error("Settle of an unknown order = true")
			}
			if got := l.Remaining(); got != tc.remaining {
				t.Errorf("Remaining after refused settles = %d, want %d", got, tc.remaining)
			}
			// The settled order's heap entry is stale: only b comes due.
			due := l.Due(t0.Add(time.Hour), 10)
			if len(due) != 1 || due[0] != b {
				t.Errorf("Due = %+v, want only %+v", due, b)
			}
		})
	}
}

func TestDueAndRequeue(t *testing.T) {
	l := New(testSale(t))
	newID := ids()
	// Created out of expiry order, so Due must sort. Holds are 60 s.
	o20 := commit(t, l, t0.Add(20*time.Second), newID, buy("a", 1))[0]
	o0 := commit(t, l, t0, newID, buy("b", 1))[0]
	o30 := commit(t, l, t0.Add(30*time.Second), newID, buy("c", 1))[0]
	o10 := commit(t, l, t0.Add(10*time.Second), newID, buy("d", 1))[0]
	names := func(os []surge.Order) []string {
		out := []string{}
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out
	}
	want := func(got []surge.Order, want ...surge.Order) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("Due = %v, want %v", names(got), names(want))
		}
	}

	want(l.Due(t0.Add(60*time.Second-time.Millisecond), 10))
	want(l.Due(t0.Add(70*time.Second), 10), o0, o10) // at ExpiresAt is due
	// Due leaves orders reserved until Settle, but hands each out once.
	if _, ok := l.Reserved(o0.ID); !ok {
		t.Error("order reserved no more after Due")
	}
	want(l.Due(t0.Add(70*time.Second), 10))
	// A failed expiry puts its orders back, in order; a settled one stays out.
	l.Settle(o10.ID, surge.OrderCancelled)
	l.Requeue([]surge.Order{o10, o0})
	want(l.Due(t0.Add(time.Hour), 1), o0)
	// Settled entries (paid, cancelled) are skipped as stale.
	l.Settle(o20.ID, surge.OrderPaid)
	want(l.Due(t0.Add(time.Hour), 10), o30)
	want(l.Due(t0.Add(24*time.Hour), 10))
	if n := len(l.st.expiry); n != 0 {
		t.Errorf("%d entries left in the expiry heap, want 0", n)
	}
	if got := l.Remaining(); got != 5-4+1 {
		t.Errorf("Remaining = %d, want %d: Due and Requeue must not move units", got, 2)
	}
}

func TestRestore(t *testing.T) {
	sale := testSale(t)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	order := func(id, user, key string, q int64, st surge.OrderStatus, created time.Duration) surge.Order {
		return surge.Order{ID: id, SaleID: sale.ID, UserID: user, Quantity: q, Status: st,
			IdempotencyKey: key, CreatedAt: at(created), ExpiresAt: at(created + 60*time.Second)}
	}
	stored := []surge.Order{
		order("o1", "a", "k1", 1, surge.OrderPaid, 0),
		order("o2", "a", "", 1, surge.OrderReserved, 20*time.Second),
		order("o3", "b", "k3", 2, surge.OrderCancelled, 0),
		order("o4", "c", "k4", 1, surge.OrderExpired, 0),
		order("o5", "b", "k5", 1, surge.OrderReserved, 10*time.Second),
	}
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "Restore", true: "RestoreAll"}[all], func(t *testing.T) {
			testRestored(t, restored(sale, stored, all), stored)
		})
	}
}

// restored is a new state of sale with orders restored one at a time, or
// all at once.
func restored(sale surge.Sale, orders []surge.Order, all bool) *Sale {
	l := New(sale)
	if all {
		l.RestoreAll(orders, time.Time{})
		return l
	}
	for _, o := range orders {
		l.Restore(o, time.Time{})
	}
	return l
}

func testRestored(t *testing.T, l *Sale, stored []surge.Order) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if err := l.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := l.Remaining(); got != 2 {
		t.Errorf("Remaining = %d, want 2 (5 less a's 2 and b's 1)", got)
	}
	if want := map[string]int64{"a": 2, "b": 1}; !maps.Equal(l.heldMap(), want) {
		t.Errorf("held = %v, want %v", l.heldMap(), want)
	}
	for _, o := range stored {
		_, ok := l.Reserved(o.ID)
		if ok != (o.Status == surge.OrderReserved) {
			t.Errorf("Reserved(%s) = %v for a %s order", o.ID, ok, o.Status)
		}
		if o.IdempotencyKey == "" {
			continue
		}
		first := o
		first.Status = surge.OrderReserved // the first answer, whatever became of it
		if got, st := l.LookupKey(o.UserID, o.IdempotencyKey); st != surge.KeyDone || got != first {
			t.Errorf("LookupKey(%s, %s) = %v %+v, want KeyDone %+v", o.UserID, o.IdempotencyKey, st, got, first)
		}
	}
	// Restored state decides like the original: limits, replays, expiry.
	outs, _ := l.Decide([]surge.Purchase{buy("a", 1), buyKey("b", "k3", 2), buy("b", 1), buy("c", 2)}, at(30*time.Second), ids())
	codes := []surge.Code{}
	for _, o := range outs {
		codes = append(codes, o.Code)
	}
	wantCodes := []surge.Code{surge.CodeLimitReached, surge.CodeReserved, surge.CodeReserved, surge.CodeSoldOut}
	if !slices.Equal(codes, wantCodes) || !outs[1].Replay || outs[1].Order.ID != "o3" {
		t.Errorf("decisions after Restore = %v (replay %v of %s), want %v replaying o3", codes, outs[1].Replay, outs[1].Order.ID, wantCodes)
	}
	due := l.Due(at(time.Hour), 10)
	if len(due) != 2 || due[0] != stored[4] || due[1] != stored[1] {
		t.Errorf("Due = %+v, want o5 then o2", due)
	}
}

func TestVerify(t *testing.T) {
	sale := testSale(t)
	o := func(id, user, key string, q int64) surge.Order {
		return surge.Order{ID: id, SaleID: sale.ID, UserID: user, Quantity: q, Status: surge.OrderPaid,
			IdempotencyKey: key, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	}
	cases := []struct {
		name   string
		orders []surge.Order
		ok     bool
	}{
		{"Valid", []surge.Order{o("o1", "a", "k", 2), o("o2", "b", "k", 2), o("o3", "c", "", 1)}, true},
		{"Oversold", []surge.Order{o("o1", "a", "", 2), o("o2", "b", "", 2), o("o3", "c", "", 2)}, false},
		{"OverLimit", []surge.Order{o("o1", "a", "", 2), o("o2", "a", "", 1)}, false},
		{"DuplicateKey", []surge.Order{o("o1", "a", "k", 1), o("o2", "a", "k", 1)}, false},
	}
	for _, tc := range cases {
		for _, all := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/all=%v", tc.name, all), func(t *testing.T) {
				if err := restored(sale, tc.orders, all).Verify(); (err == nil) != tc.ok {
					t.Errorf("Verify = %v, want ok=%v", err, tc.ok)
				}
			})
		}
	}
}

// TestRestoreAllSameAsRestore restores the same thousands of orders (buyers
// with several orders, keys kept and dropped, every status, tables growing
// meanwhile) one at a time into one state and in uneven batches into
// another, and compares everything the two answer.
func TestRestoreAllSameAsRestore(t *testing.T) {
	id, name := "s", "S"
	stock, limit, hold := int64(100_000), int64(100), int64(600)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &t0, HoldSeconds: &hold}, t0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []surge.OrderStatus{surge.OrderReserved, surge.OrderPaid, surge.OrderCancelled, surge.OrderExpired}
	orders := make([]surge.Order, 5000)
	for i := range orders {
		created := t0.Add(time.Duration(i) * time.Second)
		o := surge.Order{ID: fmt.Sprintf("o_%d", i), SaleID: sale.ID, UserID: fmt.Sprintf("u%d", rng.IntN(2000)),
			Quantity: 1, Status: statuses[rng.IntN(len(statuses))], CreatedAt: created, ExpiresAt: created.Add(sale.Hold())}
		if rng.IntN(4) > 0 {
			o.IdempotencyKey = fmt.Sprintf("k%d", i)
		}
		orders[i] = o
	}
	keysAfter := t0.Add(2500 * time.Second) // the older half's dead keys stay on disk
	one, all := New(sale), New(sale)
	for _, o := range orders {
		one.Restore(o, keysAfter)
	}
	for rest := orders; len(rest) > 0; {
		n := min(1+rng.IntN(700), len(rest))
		all.RestoreAll(rest[:n], keysAfter)
		rest = rest[n:]
	}
	if err := all.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if one.Remaining() != all.Remaining() || !maps.Equal(one.heldMap(), all.heldMap()) || one.Keys() != all.Keys() {
		t.Fatalf("remaining %d/%d, keys %d/%d, holdings equal %v", one.Remaining(), all.Remaining(),
			one.Keys(), all.Keys(), maps.Equal(one.heldMap(), all.heldMap()))
	}
	for _, o := range orders {
		a, aok := one.Reserved(o.ID)
		b, bok := all.Reserved(o.ID)
		if a != b || aok != bok {
			t.Fatalf("Reserved(%s): %+v %v one at a time, %+v %v at once", o.ID, a, aok, b, bok)
		}
		if o.IdempotencyKey == "" {
			continue
		}
		a, as := one.LookupKey(o.UserID, o.IdempotencyKey)
		b, bs := all.LookupKey(o.UserID, o.IdempotencyKey)
		if a != b || as != bs {
			t.Fatalf("LookupKey(%s, %s): %+v %v one at a time, %+v %v at once", o.UserID, o.IdempotencyKey, a, as, b, bs)
		}
	}
	if a, b := one.Due(t0.Add(24*time.Hour), len(orders)), all.Due(t0.Add(24*time.Hour), len(orders)); !slices.Equal(a, b) {
		t.Fatalf("Due: %d orders one at a time, %d at once, or a different order", len(a), len(b))
	}
}
