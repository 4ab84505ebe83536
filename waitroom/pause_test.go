package waitroom

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

// TestPauseAcrossTheStart: a sale paused before its start and resumed an
// hour after it admits nobody in that hour, in either order: its queue
// starts at the resume, a lottery's draw included, and the first window
// is whole then. The purchase gate and the metrics' line count by the
// same clock.
func TestPauseAcrossTheStart(t *testing.T) {
	ctx := context.Background()
	steer := func(t *testing.T, s *surge.Sale, paused bool, at time.Time) {
		t.Helper()
		next, err := s.Apply(surge.SalePatch{Paused: &paused}, 0, at)
		if err != nil {
			t.Fatal(err)
		}
		*s = next
	}
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			clk := testclock.New(start.Add(-time.Minute))
			r := newRoom(t, clk, 0)
			s := saleWith("s", 1, order, 10)
			users := []string{"a", "b", "c"}
			tickets := map[string]string{}
			for _, u := range users {
				tickets[u] = join(t, r, s, u).Ticket
			}
			steer(t, s, true, start.Add(-time.Second))
			clk.Set(start.Add(time.Hour))
			// The clock stands at the start: the first slot is open, with its
			// whole window, the others wait their turn.
			bySlot := map[int64]string{}
			for _, u := range users {
				st := status(t, r, s, tickets[u])
				bySlot[st.Position] = u
				if st.Position == 0 && (st.State != Admitted || !st.Until.Equal(clk.Now().Add(10*time.Second))) ||
					st.Position > 0 && (st.State != Waiting || st.Wait != time.Duration(st.Position)*time.Second) {
					t.Fatalf("%s an hour into the pause: %+v", u, st)
				}
			}
			if len(bySlot) != 3 {
				t.Fatalf("positions: %v", bySlot)
			}
			if waiting, admitted, err := r.Line(ctx, s); err != nil || waiting != 2 || admitted != 1 {
				t.Fatalf("line an hour into the pause: %d waiting, %d admitted, %v; want 2, 1", waiting, admitted, err)
			}
			steer(t, s, false, clk.Now())
			clk.Advance(10*time.Second + 500*time.Millisecond)
			first, second, third := bySlot[0], bySlot[1], bySlot[2]
			wantCode(t, r.Check(ctx, s, first, tickets[first]), surge.CodeNotAdmitted, "expired at 2031-03-14T11:00:10Z")
			for _, u := range []string{second, third} {
				if err := r.Check(ctx, s, u, tickets[u]); err != nil {
					t.Errorf("%s 10.5 s after the resume: %v, want admitted", u, err)
				}
			}
			if waiting, admitted, err := r.Line(ctx, s); err != nil || waiting != 0 || admitted != 3 {
				t.Fatalf("line after the resume: %d waiting, %d admitted, %v; want 0, 3", waiting, admitted, err)
			}
		})
	}
}
