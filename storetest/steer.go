package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// testSteer: every store implements surge.Steerer. A change is durable
// (it survives a reopen), decisions after it follow it, stock goes down to
// the units reserved and paid orders hold and no lower, a lowered limit
// binds new purchases only, and a refused change changes nothing.
func testSteer(t *testing.T, h Harness) {
	steerer := func(e *env) surge.Steerer {
		st, ok := e.s.(surge.Steerer)
		if !ok {
			e.t.Fatalf("%T does not implement surge.Steerer", e.s)
		}
		return st
	}
	update := func(e *env, id string, p surge.SalePatch) (surge.Sale, error) {
		return steerer(e).UpdateSale(e.ctx, id, p, surge.At(at(time.Minute)))
	}
	mustUpdateAt := func(e *env, id string, p surge.SalePatch, now time.Time) surge.Sale {
		e.t.Helper()
		sl, err := steerer(e).UpdateSale(e.ctx, id, p, surge.At(now))
		if err != nil {
			e.t.Fatalf("UpdateSale(%s, %+v): %v", id, p, err)
		}
		return sl
	}
	mustUpdate := func(e *env, id string, p surge.SalePatch) surge.Sale {
		e.t.Helper()
		return mustUpdateAt(e, id, p, at(time.Minute))
	}
	wantCode := func(e *env, what string, err error, code surge.Code) {
		e.t.Helper()
		if surge.ErrorCode(err) != code {
			e.t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}
	wantSale := func(e *env, want surge.Sale) {
		e.t.Helper()
		got, err := steerer(e).Sale(e.ctx, want.ID)
		if err != nil {
			e.t.Fatalf("Sale(%s): %v", want.ID, err)
		}
		if d := salesDiff([]surge.Sale{got}, []surge.Sale{want}); d != "" {
			e.t.Errorf("Sale(%s):\n%s", want.ID, d)
		}
		for _, sl := range e.sales() {
			if sl.ID == want.ID {
				if d := salesDiff([]surge.Sale{sl}, []surge.Sale{want}); d != "" {
					e.t.Errorf("Sales lists %s:\n%s", want.ID, d)
				}
			}
		}
	}
	codeOf := func(e *env, saleID string, now time.Time, p surge.Purchase) surge.Code {
		e.t.Helper()
		out, _ := e.reserve(saleID, now, p)
		return out[0].Code
	}

	t.Run("Stock", func(t *testing.T) {
		e := newEnv(t, h)
		sl := newSale(t, "s", 10, 3)
		e.createSale(sl)
		e.reserveOne("s", at(0), buy("u1", 3))
		paid := e.reserveOne("s", at(0), buy("u2", 2))
		e.pay(paid.ID, at(time.Second))
		gone := e.reserveOne("s", at(0), buy("u3", 1))
		e.cancel(gone.ID, at(time.Second)) // 5 units held: 3 reserved, 2 paid

		_, err := update(e, "s", surge.SalePatch{Stock: new(int64(4))})
		wantCode(e, "stock below the units held", err, surge.CodeStockBelowSold)
		e.wantRemaining("s", 5)
		wantSale(e, sl)

		sl.Stock = 5
		if got := mustUpdate(e, "s", surge.SalePatch{Stock: new(int64(5))}); got.Stock != 5 {
			t.Fatalf("UpdateSale answered stock %d, want 5", got.Stock)
		}
		e.wantRemaining("s", 0)
		if c := codeOf(e, "s", at(2*time.Minute), buy("u4", 1)); c != surge.CodeSoldOut {
			t.Fatalf("a purchase after the stock went down to the units held: %s, want sold_out", c)
		}
		sl.Stock = 12
		mustUpdate(e, "s", surge.SalePatch{Stock: new(int64(12))})
		e.wantRemaining("s", 7)
		e.reserveOne("s", at(2*time.Minute), buy("u4", 3))
		e.reserveOne("s", at(2*time.Minute), buy("u5", 2))
		e.wantRemaining("s", 2)
		e.reopen()
		wantSale(e, sl)
		e.wantRemaining("s", 2)
		if c := codeOf(e, "s", at(3*time.Minute), buy("u6", 3)); c != surge.CodeSoldOut {
			t.Errorf("3 units of 2 left after reopen: %s, want sold_out", c)
		}
		_, err = update(e, "s", surge.SalePatch{Stock: new(int64(9))})
		wantCode(e, "stock below the units held after reopen", err, surge.CodeStockBelowSold)
		e.wantRemaining("s", 2)
	})

	t.Run("Pause", func(t *testing.T) {
		e := newEnv(t, h)
		sl := newSale(t, "p", 10, 2)
		e.createSale(sl)
		first := e.reserveOne("p", at(0), buyKey("u1", "k1", 1))
		// The pause keeps its start (whole milliseconds), which every node
		// and a restart read: a waiting room's clock stops from then on.
		sl.Paused, sl.PausedAt = true, at(time.Minute)
		mustUpdateAt(e, "p", surge.SalePatch{Paused: new(true)}, at(time.Minute+300*time.Microsecond))
		wantSale(e, sl)
		mustUpdateAt(e, "p", surge.SalePatch{Paused: new(true)}, at(5*time.Minute)) // again: the pause began at its start
		wantSale(e, sl)
		if c := codeOf(e, "p", at(time.Minute), buy("u2", 1)); c != surge.CodePaused {
			t.Fatalf("a purchase of a paused sale: %s, want paused", c)
		}
		e.wantReplay("p", at(time.Minute), buyKey("u1", "k1", 1), first) // a key answers its first reservation forever
		e.wantRemaining("p", 9)
		e.reopen()
		wantSale(e, sl)
		if c := codeOf(e, "p", at(time.Minute), buy("u2", 1)); c != surge.CodePaused {
			t.Fatalf("a purchase of a paused sale after reopen: %s, want paused", c)
		}
		// A sale past its end answers ended, paused or not.
		ended := sl
		ended.EndsAt = at(time.Hour)
		mustUpdate(e, "p", surge.SalePatch{EndsAt: &ended.EndsAt})
		if c := codeOf(e, "p", at(2*time.Hour), buy("u2", 1)); c != surge.CodeEnded {
			t.Fatalf("a purchase of a paused sale past its end: %s, want ended", c)
		}
		// The resume adds the pause's length to the sale's stopped time.
		sl.Paused, sl.PausedAt, sl.PausedFor = false, time.Time{}, 90*time.Minute
		mustUpdateAt(e, "p", surge.SalePatch{Paused: new(false), EndsAt: new(time.Time{})}, at(91*time.Minute))
		wantSale(e, sl)
		e.reopen()
		wantSale(e, sl)
		e.reserveOne("p", at(2*time.Hour), buy("u2", 1))
		e.wantRemaining("p", 8)
	})

	t.Run("Limit", func(t *testing.T) {
		e := newEnv(t, h)
		sl := newSale(t, "l", 100, 5)
		e.createSale(sl)
		e.reserveOne("l", at(0), buy("u1", 3))
		sl.PerUserLimit = 2
		mustUpdate(e, "l", surge.SalePatch{PerUserLimit: new(int64(2))})
		// u1 keeps the 3 units bought under the old limit, buys no more.
		if c := codeOf(e, "l", at(time.Minute), buy("u1", 1)); c != surge.CodeLimitReached {
			t.Fatalf("u1 holding 3 of a limit lowered to 2 buys one more: %s, want limit_reached", c)
		}
		e.reserveOne("l", at(time.Minute), buy("u2", 2))
		if c := codeOf(e, "l", at(time.Minute), buy("u2", 1)); c != surge.CodeLimitReached {
			t.Fatalf("u2 buying a third unit of a limit of 2: %s, want limit_reached", c)
		}
		// A reopen accepts the orders made under the higher limit.
		e.reopen()
		wantSale(e, sl)
		e.wantRemaining("l", 95)
		if c := codeOf(e, "l", at(time.Minute), buy("u2", 1)); c != surge.CodeLimitReached {
			t.Fatalf("after reopen, u2 buying a third unit of a limit of 2: %s, want limit_reached", c)
		}
		sl.PerUserLimit = 4
		mustUpdate(e, "l", surge.SalePatch{PerUserLimit: new(int64(4))})
		e.reserveOne("l", at(time.Minute), buy("u1", 1))
		e.reopen()
		wantSale(e, sl)
		e.wantRemaining("l", 94)
	})

	// The engine judges a purchase against the sale as it was when the
	// purchase arrived; the limit may go down before its batch reaches
	// the store. A purchase above the new limit is then refused alone, as
	// a buyer over the limit is; the rest of its batch stands. A replay of
	// a key first used under the old limit still answers its order.
	t.Run("LimitLoweredUnderABatch", func(t *testing.T) {
		e := newEnv(t, h)
		e.createSale(newSale(t, "lb", 100, 3))
		first := e.reserveOne("lb", at(0), buyKey("u0", "k0", 3))
		mustUpdate(e, "lb", surge.SalePatch{PerUserLimit: new(int64(2))})
		out, _ := e.reserve("lb", at(time.Minute), buy("u1", 1), buy("u2", 3), buyKey("u0", "k0", 3), buy("u3", 2))
		for i, want := range []surge.Code{surge.CodeReserved, surge.CodeLimitReached, surge.CodeReserved, surge.CodeReserved} {
			if out[i].Err != nil || out[i].Code != want {
				t.Errorf("purchase %d of the batch: %s, %v; want %s", i, out[i].Code, out[i].Err, want)
			}
		}
		if !out[2].Replay || out[2].Order.ID != first.ID {
			t.Errorf("the key of 3 units bought under the old limit: %+v, want the replay of %s", out[2], first.ID)
		}
		e.wantRemaining("lb", 94)
	})

	t.Run("EndsAtNameHold", func(t *testing.T) {
		e := newEnv(t, h)
		sl := newSale(t, "e", 10, 1)
		e.createSale(sl)
		// Ended at once: at the time of the change.
		sl.EndsAt, sl.Name, sl.HoldSeconds = at(time.Minute), "Renamed", 30
		mustUpdate(e, "e", surge.SalePatch{EndsAt: &sl.EndsAt, Name: &sl.Name, HoldSeconds: new(int64(30))})
		wantSale(e, sl)
		if c := codeOf(e, "e", at(time.Minute), buy("u1", 1)); c != surge.CodeEnded {
			t.Fatalf("a purchase at the new end: %s, want ended", c)
		}
		e.reopen()
		wantSale(e, sl)
		// No purchase is asked at an instant before the change that ended
		// the sale (a clock gone back): a cluster refuses it ended, as a
		// node whose clock is behind the one that ended the sale must.
		sl.EndsAt = time.Time{}
		mustUpdate(e, "e", surge.SalePatch{EndsAt: new(time.Time{})})
		wantSale(e, sl)
		o := e.reserveOne("e", at(time.Minute), buy("u1", 1))
		if want := at(time.Minute + 30*time.Second); !o.ExpiresAt.Equal(want) {
			t.Errorf("an order after hold_seconds became 30 expires at %v, want %v", o.ExpiresAt, want)
		}
		e.reserveOne("e", at(time.Hour), buy("u2", 1))
	})

	t.Run("Refused", func(t *testing.T) {
		e := newEnv(t, h)
		sl := newSale(t, "r", 10, 2, startsAt(at(time.Minute)), createdAt(at(0)))
		e.createSale(sl)
		for _, c := range []struct {
			what string
			p    surge.SalePatch
		}{
			{"stock 0", surge.SalePatch{Stock: new(int64(0))}},
			{"stock over the maximum", surge.SalePatch{Stock: new(int64(surge.MaxStock + 1))}},
			{"stock below the limit", surge.SalePatch{Stock: new(int64(1))}},
			{"limit 0", surge.SalePatch{PerUserLimit: new(int64(0))}},
			{"limit over the stock", surge.SalePatch{PerUserLimit: new(int64(11))}},
			{"empty name", surge.SalePatch{Name: new(" ")}},
			{"name with a line break", surge.SalePatch{Name: new("a\nb")}},
			{"hold 0", surge.SalePatch{HoldSeconds: new(int64(0))}},
			{"end before the start", surge.SalePatch{EndsAt: new(at(30 * time.Second))}},
			{"a good field beside a bad one", surge.SalePatch{Paused: new(true), Stock: new(int64(0))}},
		} {
			_, err := update(e, "r", c.p)
			wantCode(e, c.what, err, surge.CodeInvalid)
		}
		wantSale(e, sl)
		_, err := update(e, "nope", surge.SalePatch{Paused: new(true)})
		wantCode(e, "an unknown sale", err, surge.CodeSaleNotFound)

		a := newSale(t, "a", 5, 1, endsAt(at(time.Hour)), createdAt(at(time.Second)))
		e.createSale(a)
		if _, err := e.s.(surge.Archiver).ArchiveSale(e.ctx, "a", at(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, err = update(e, "a", surge.SalePatch{Stock: new(int64(9))})
		wantCode(e, "an archived sale", err, surge.CodeSaleNotFound)
	})
}
