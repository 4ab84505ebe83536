package storetest

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
)

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
