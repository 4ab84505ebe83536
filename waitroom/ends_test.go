package waitroom

import (
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

// TestWindowEndsWithTheSale: admission ends with the sale (docs/api.md),
// so no place's window reaches past ends_at. A place admitted for 30 s a
// second before a sale that ends 3 s after its start read, before the end,
// "admitted until" a time the sale no longer sells at, and after it
// "expired" with that same admitted_until, 27 s after the end; a place
// whose turn comes after the end was told to wait past it. Every window is
// now cut at ends_at (a turn due after it is an empty window there), and
// no wait points past the end.
func TestWindowEndsWithTheSale(t *testing.T) {
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			clk := testclock.New(start.Add(-time.Minute))
			r := newRoom(t, clk, 0)
			s := saleWith("s", 1, order, 30)
			s.EndsAt = start.Add(3 * time.Second)
			const n = 6
			tickets := make([]string, n)
			for i := range n {
				tickets[i] = join(t, r, s, fmt.Sprintf("u%d", i)).Ticket
			}
			for _, at := range []time.Duration{time.Second, 2500 * time.Millisecond, 4 * time.Second, time.Minute} {
				clk.Set(start.Add(at))
				ended := !clk.Now().Before(s.EndsAt)
				for i := range n {
					st := status(t, r, s, tickets[i])
					tickets[i] = st.Ticket
					if ended && st.State != Expired {
						t.Errorf("start+%v, after the end: u%d reads %s; want expired", at, i, st.State)
					}
					if st.Until.After(s.EndsAt) || st.AdmitAt.After(st.Until) {
						t.Errorf("start+%v: u%d (%s) reads admitted_at %v, admitted_until %v; the sale ends at %v: want a window within it",
							at, i, st.State, st.AdmitAt.Format(time.StampMilli), st.Until.Format(time.StampMilli), s.EndsAt.Format(time.StampMilli))
					}
					if st.State == Waiting && clk.Now().Add(st.Wait).After(s.EndsAt) {
						t.Errorf("start+%v: u%d waits %v, past the sale's end at %v", at, i, st.Wait, s.EndsAt.Format(time.StampMilli))
					}
				}
			}
		})
	}
}
