package waitroom

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

// After a restart the in-memory queue is empty, so its places would be
// handed out again: a buyer could rejoin ahead of their old place and hold
// two valid tickets. Tickets are bound to the queue's epoch, so every
// ticket of before the restart is refused, for reads and purchases alike,
// and only the new place counts (issue 9, item 13).
func TestRestartInvalidatesTickets(t *testing.T) {
	ctx := context.Background()
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			clk := testclock.New(start.Add(-time.Minute))
			s := saleWith("s", 1, order, 3600)
			before := newRoom(t, clk, 0)
			for _, u := range []string{"a", "b", "c"} {
				join(t, before, s, u)
			}
			old := join(t, before, s, "mallory")
			clk.Set(start.Add(time.Second)) // the lottery is drawn
			old = status(t, before, s, old.Ticket)
			if old.AdmitAt.IsZero() {
				t.Fatalf("no place before the restart: %+v", old)
			}

			after := newRoom(t, clk, 0) // same secret, fresh memory: a restart
			_, err := after.Status(ctx, s, old.Ticket)
			wantCode(t, err, surge.CodeInvalidTicket, "restart")
			clk.Set(old.AdmitAt)
			wantCode(t, after.Check(ctx, s, "mallory", old.Ticket), surge.CodeNotAdmitted, "restart")

			// Joining again gives one new place; its ticket works.
			now := join(t, after, s, "mallory")
			if now.Ticket == old.Ticket {
				t.Fatal("the same ticket after a restart")
			}
			clk.Set(now.AdmitAt)
			if err := after.Check(ctx, s, "mallory", now.Ticket); err != nil {
				t.Fatalf("the new ticket: %v", err)
			}
			wantCode(t, after.Check(ctx, s, "mallory", old.Ticket), surge.CodeNotAdmitted, "restart")
		})
	}
}

// A ticket read back from the same process keeps working: the epoch
// changes only with the queue's memory.
func TestEpochStableWithinAProcess(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(start)
	s := saleWith("s", 1000, surge.QueueFIFO, 60)
	backend := NewMemory(0)
	r1, err := New(Config{Secret: testSecret, Backend: backend, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Another Room over the same backend (another handler of the same
	// process) accepts the ticket.
	r2, err := New(Config{Secret: testSecret, Backend: backend, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tk := join(t, r1, s, "alice").Ticket
	clk.Advance(time.Second)
	if err := r2.Check(ctx, s, "alice", tk); err != nil {
		t.Fatal(err)
	}
	if st := status(t, r2, s, tk); st.State != Admitted {
		t.Fatalf("state %s, want admitted", st.State)
	}
}

// A sale whose waiting room starts at the validation bound (100 years
// ago) still schedules: joins get places, tickets admit.
func TestScheduleAtTheStartBound(t *testing.T) {
	ctx := context.Background()
	now := start
	clk := testclock.New(now)
	r := newRoom(t, clk, 0)
	for _, rate := range []int64{1, surge.MaxAdmitPerSecond} {
		s := saleWith("old", rate, surge.QueueFIFO, 60)
		s.StartsAt = now.Add(-surge.MaxWaitingRoomSkew)
		st := join(t, r, s, "u")
		if st.State != Waiting && st.State != Admitted {
			t.Fatalf("rate %d: state %s", rate, st.State)
		}
		if st.AdmitAt.Before(now) || st.AdmitAt.After(now.Add(time.Second)) {
			t.Fatalf("rate %d: admitted at %v, want within a second of %v", rate, st.AdmitAt, now)
		}
		clk.Set(st.AdmitAt)
		if err := r.Check(ctx, s, "u", st.Ticket); err != nil {
			t.Fatalf("rate %d: %v", rate, err)
		}
		clk.Set(now)
		r = newRoom(t, clk, 0)
	}
}
