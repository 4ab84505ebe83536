package redis_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/waitroom"
)

// TestRoomAnswersMatchMemory runs one sequence of joins (past the bound,
// again, after the end), reads of places, purchase checks and line counts,
// across a pause over the start, a pause mid-line and an end moved later,
// through a Room on the in-memory backend (embedded mode) and one on the
// real Redis (cluster mode), and wants the same answers from both: a buyer
// must not be placed, admitted or refused differently by the mode. A
// lottery's draw is random, so its answers are compared as sets.
func TestRoomAnswersMatchMemory(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			ctx := context.Background()
			clk := testclock.New(start.Add(-time.Minute))
			var rooms [2]*waitroom.Room
			for i, b := range []waitroom.Backend{waitroom.NewMemory(6), queues(t, 6)} {
				r, err := waitroom.New(waitroom.Config{Secret: secret, Backend: b, Now: clk.Now})
				if err != nil {
					t.Fatal(err)
				}
				rooms[i] = r
			}
			sale := &surge.Sale{ID: "s" + order, Name: "s", Stock: 10, PerUserLimit: 1, StartsAt: start, HoldSeconds: 60,
				EndsAt:      start.Add(time.Hour),
				WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 2, Policy: order, TicketSeconds: 5}}
			tickets := [2]map[string]string{{}, {}}
			users := []string{}
			show := func(st waitroom.Status, err error) string {
				if err != nil {
					return "err " + string(surge.ErrorCode(err))
				}
				return fmt.Sprintf("%s pos %d wait %v at %v until %v", st.State, st.Position, st.Wait,
					st.AdmitAt.Sub(start), st.Until.Sub(start))
			}
			compare := func(what string, a, b []string) {
				t.Helper()
				if order == surge.QueueLottery {
					a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
				}
				if !slices.Equal(a, b) {
					t.Errorf("%s at %v:\nmemory %q\nredis  %q", what, clk.Now().Sub(start), a, b)
				}
			}
			joinAll := func(us ...string) {
				t.Helper()
				var got [2][]string
				for i, r := range rooms {
					for _, u := range us {
						st, created, err := r.Join(ctx, sale, u)
						if err == nil {
							tickets[i][u] = st.Ticket
						}
						if order == surge.QueueLottery && err == nil && !created {
							// A known buyer's place, drawn at random: readAll compares it.
							got[i] = append(got[i], "known")
							continue
						}
						got[i] = append(got[i], fmt.Sprintf("%v %s", created, show(st, err)))
					}
				}
				for _, u := range us {
					if !slices.Contains(users, u) {
						users = append(users, u)
					}
				}
				compare("join", got[0], got[1])
			}
			readAll := func() {
				t.Helper()
				var got, chk [2][]string
				for i, r := range rooms {
					for _, u := range users {
						if tickets[i][u] == "" {
							continue
						}
						st, err := r.Status(ctx, sale, tickets[i][u])
						got[i] = append(got[i], show(st, err))
						pl, err := r.Place(ctx, sale, u)
						got[i] = append(got[i], "place "+show(pl, err))
						err = r.Check(ctx, sale, u, tickets[i][u])
						chk[i] = append(chk[i], fmt.Sprint(err))
					}
					w, a, err := r.Line(ctx, sale)
					got[i] = append(got[i], fmt.Sprintf("line %d %d %v", w, a, err))
				}
				compare("status", got[0], got[1])
				compare("check", chk[0], chk[1])
			}
			steer := func(paused bool) {
				next, err := sale.Apply(surge.SalePatch{Paused: &paused}, 0, clk.Now())
				if err != nil {
					t.Fatal(err)
				}
				*sale = next
			}
			joinAll("a", "b", "c")
			readAll()
			clk.Set(start.Add(-time.Second))
			steer(true)
			joinAll("d", "a")
			clk.Set(start.Add(10 * time.Second))
			joinAll("e")
			readAll()
			steer(false)
			clk.Set(start.Add(10*time.Second + 700*time.Millisecond))
			readAll()
			joinAll("f", "g", "b")
			readAll()
			for _, d := range []time.Duration{1300 * time.Millisecond, 2 * time.Second, 4 * time.Second, 9 * time.Second} {
				clk.Set(start.Add(10*time.Second + d))
				readAll()
			}
			clk.Set(start.Add(2 * time.Hour))
			readAll()
			joinAll("h", "a")
			// The operator moves the end: the sale reopens.
			end := start.Add(3 * time.Hour)
			next, err := sale.Apply(surge.SalePatch{EndsAt: &end}, 0, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			*sale = next
			readAll()
			joinAll("h", "a")
			clk.Set(start.Add(2*time.Hour + 700*time.Millisecond))
			readAll()
			steer(true)
			clk.Set(start.Add(2*time.Hour + 10*time.Second))
			readAll()
			steer(false)
			readAll()
		})
	}
}
