package waitroom

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

var (
	start      = time.Date(2031, 3, 14, 10, 0, 0, 0, time.UTC)
	testSecret = []byte("0123456789abcdef0123456789abcdef")
)

func newRoom(t testing.TB, clk *testclock.Clock, maxEntries int) *Room {
	t.Helper()
	r, err := New(Config{Secret: testSecret, Backend: NewMemory(maxEntries), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func saleWith(id string, rate int64, order string, ticketSeconds int64) *surge.Sale {
	return &surge.Sale{ID: id, Name: id, Stock: 10, PerUserLimit: 1, StartsAt: start, HoldSeconds: 60,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: rate, Policy: order, TicketSeconds: ticketSeconds}}
}

func join(t testing.TB, r *Room, s *surge.Sale, user string) Status {
	t.Helper()
	st, _, err := r.Join(context.Background(), s, user)
	if err != nil {
		t.Fatalf("join %s: %v", user, err)
	}
	return st
}

func status(t testing.TB, r *Room, s *surge.Sale, ticket string) Status {
	t.Helper()
	st, err := r.Status(context.Background(), s, ticket)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func wantCode(t testing.TB, err error, code surge.Code, msg string) *surge.Error {
	t.Helper()
	var e *surge.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
	if !strings.Contains(e.Message, msg) {
		t.Fatalf("message %q, want it to contain %q", e.Message, msg)
	}
	return e
}

func TestNewRefusesShortSecrets(t *testing.T) {
	for _, n := range []int{0, 1, MinSecretLen - 1} {
		if _, err := New(Config{Secret: make([]byte, n)}); err == nil {
			t.Errorf("a %d-byte secret was accepted", n)
		}
	}
	if _, err := New(Config{Secret: make([]byte, MinSecretLen)}); err != nil {
		t.Error(err)
	}
}

func TestFIFO(t *testing.T) {
	clk := testclock.New(start.Add(-time.Minute))
	r := newRoom(t, clk, 0)
	s := saleWith("s", 2, surge.QueueFIFO, 60)
	var tickets []string
	for i := range 5 {
		st, created, err := r.Join(context.Background(), s, fmt.Sprintf("u%d", i))
		if err != nil || !created {
			t.Fatalf("join u%d: created %v, %v", i, created, err)
		}
		// In line, in joining order, before the start.
		if st.State != Waiting || st.Position != int64(i+1) || !st.AdmitAt.Equal(start.Add(time.Duration(i)*500*time.Millisecond)) ||
			st.Wait != st.AdmitAt.Sub(clk.Now()) || !st.Until.Equal(st.AdmitAt.Add(time.Minute)) {
			t.Fatalf("u%d: %+v", i, st)
		}
		tickets = append(tickets, st.Ticket)
	}
	// Two per second from the start: at start+1s, slots 0, 1 and 2 are open.
	clk.Set(start.Add(time.Second))
	for i, want := range []struct {
		state    string
		position int64
	}{{Admitted, 0}, {Admitted, 0}, {Admitted, 0}, {Waiting, 1}, {Waiting, 2}} {
		st := status(t, r, s, tickets[i])
		if st.State != want.state || st.Position != want.position || st.UserID != fmt.Sprintf("u%d", i) {
			t.Errorf("u%d at start+1s: %+v, want %s at %d", i, st, want.state, want.position)
		}
	}
	// u0's admission lasts 60 s from the start.
	clk.Set(start.Add(time.Minute))
	if st := status(t, r, s, tickets[0]); st.State != Expired || st.Position != 0 {
		t.Errorf("u0 a minute in: %+v, want expired", st)
	}
	if st := status(t, r, s, tickets[1]); st.State != Admitted {
		t.Errorf("u1 a minute in: %+v, want admitted until start+60.5s", st)
	}
}

func TestJoinIsIdempotent(t *testing.T) {
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			clk := testclock.New(start.Add(-time.Minute))
			r := newRoom(t, clk, 0)
			s := saleWith("s", 1, order, 60)
			first := join(t, r, s, "alice")
			join(t, r, s, "bob")
			clk.Advance(time.Second)
			again, created, err := r.Join(context.Background(), s, "alice")
			if err != nil || created {
				t.Fatalf("second join: created %v, %v", created, err)
			}
			a, _ := r.signer.parse(first.Ticket)
			b, _ := r.signer.parse(again.Ticket)
			if a.Seq != 1 || b.Seq != 1 || a.Slot != b.Slot || a.Draw != b.Draw {
				t.Errorf("the second join moved alice: %+v, then %+v", a, b)
			}
			// A third buyer still comes third.
			if c, _ := r.signer.parse(join(t, r, s, "carol").Ticket); c.Seq != 3 {
				t.Errorf("carol's seq = %d, want 3", c.Seq)
			}
		})
	}
}

func TestLotteryShufflesOnlyPreStartJoiners(t *testing.T) {
	const pre, post = 200, 20
	clk := testclock.New(start.Add(-time.Hour))
	r := newRoom(t, clk, 0)
	s := saleWith("s", 10, surge.QueueLottery, 600)
	var tickets []string
	for i := range pre {
		st := join(t, r, s, fmt.Sprintf("early%d", i))
		// No order before the draw.
		if st.Position != -1 || !st.AdmitAt.IsZero() || st.State != Waiting || st.Wait != start.Sub(clk.Now()) {
			t.Fatalf("before the draw: %+v", st)
		}
		if err := r.Check(context.Background(), s, fmt.Sprintf("early%d", i), st.Ticket); err == nil {
			t.Fatal("admitted before the draw")
		}
		tickets = append(tickets, st.Ticket)
		clk.Advance(time.Second)
	}
	clk.Set(start)
	slots := make([]int64, pre)
	for i, tk := range tickets {
		st := status(t, r, s, tk)
		if st.AdmitAt.IsZero() {
			t.Fatalf("early%d after the draw: %+v", i, st)
		}
		tt, err := r.signer.parse(st.Ticket)
		if err != nil || tt.Slot == Unassigned {
			t.Fatalf("early%d: the fresh ticket has no slot (%v)", i, err)
		}
		slots[i] = tt.Slot
	}
	if sorted := slices.Sorted(slices.Values(slices.Clone(slots))); !slices.Equal(sorted, seq(0, pre)) {
		t.Fatalf("pre-start slots are not 0..%d: %v", pre-1, sorted)
	}
	if slices.IsSorted(slots) {
		t.Error("the lottery kept the joining order")
	}
	// Later joiners queue FIFO behind every early one.
	for i := range post {
		st := join(t, r, s, fmt.Sprintf("late%d", i))
		tt, _ := r.signer.parse(st.Ticket)
		if tt.Slot != int64(pre+i) || tt.Draw != 0 || st.Position != int64(pre+i) {
			t.Errorf("late%d: slot %d, position %d; want slot %d, position %d", i, tt.Slot, st.Position, pre+i, pre+i)
		}
	}
}

func seq(from, to int) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, int64(i))
	}
	return out
}

// TestLotteryIsFair: over many lotteries, the first of ten joiners is
// drawn first about one time in ten, not always.
func TestLotteryIsFair(t *testing.T) {
	firsts := 0
	for trial := range 300 {
		clk := testclock.New(start.Add(-time.Minute))
		r := newRoom(t, clk, 0)
		s := saleWith(fmt.Sprintf("s%d", trial), 1, surge.QueueLottery, 60)
		tk := join(t, r, s, "first").Ticket
		for i := range 9 {
			join(t, r, s, fmt.Sprintf("u%d", i))
		}
		clk.Set(start)
		if status(t, r, s, tk).State == Admitted {
			firsts++
		}
	}
	// Binomial(300, 0.1): mean 30, sd 5.2; these bounds fail once in
	// well over a million runs.
	if firsts < 5 || firsts > 65 {
		t.Errorf("the first joiner won %d of 300 ten-way lotteries", firsts)
	}
}

// TestLateDraw: a draw made long after the start (nobody asked before)
// still gives every early joiner a full admission.
func TestLateDraw(t *testing.T) {
	clk := testclock.New(start.Add(-time.Minute))
	r := newRoom(t, clk, 0)
	s := saleWith("s", 1, surge.QueueLottery, 10)
	a, b := join(t, r, s, "a").Ticket, join(t, r, s, "b").Ticket
	clk.Set(start.Add(time.Hour))
	sa, sb := status(t, r, s, a), status(t, r, s, b)
	first, second := sa, sb
	if sb.State == Admitted {
		first, second = sb, sa
	}
	if first.State != Admitted || !first.AdmitAt.Equal(start.Add(time.Hour)) || second.State != Waiting ||
		second.Position != 1 || !second.AdmitAt.Equal(start.Add(time.Hour+time.Second)) {
		t.Errorf("late draw: %+v and %+v", sa, sb)
	}
}

// TestAdmissionRate drives a fake clock across the start of a sale with a
// crowd queued: admissions follow the rate, never faster.
func TestAdmissionRate(t *testing.T) {
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			const n, rate = 1000, 50
			clk := testclock.New(start.Add(-time.Minute))
			r := newRoom(t, clk, 0)
			s := saleWith("s", rate, order, 3600)
			var tickets []string
			for i := range n {
				tickets = append(tickets, join(t, r, s, fmt.Sprintf("u%d", i)).Ticket)
			}
			for _, at := range []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, time.Second, 7*time.Second + 500*time.Millisecond, 20 * time.Second} {
				clk.Set(start.Add(at))
				admitted, positions := 0, map[int64]bool{}
				for i, tk := range tickets {
					st := status(t, r, s, tk)
					ok := r.Check(context.Background(), s, fmt.Sprintf("u%d", i), tk) == nil
					if ok != (st.State == Admitted) {
						t.Fatalf("at %v: Check says %v, Status %+v", at, ok, st)
					}
					if st.State == Admitted {
						admitted++
					} else if positions[st.Position] {
						t.Fatalf("at %v: position %d given twice", at, st.Position)
					} else {
						positions[st.Position] = true
					}
				}
				want := min(n, int(int64(at)*rate/int64(time.Second))+1)
				if admitted != want {
					t.Errorf("at start+%v: %d admitted, want %d", at, admitted, want)
				}
				// The waiting hold positions 1..n-admitted.
				for p := int64(1); p <= int64(n-admitted); p++ {
					if !positions[p] {
						t.Fatalf("at %v: nobody at position %d", at, p)
					}
				}
			}
		})
	}
}

// TestNoBanking: a queue that stayed empty does not let a later crowd in
// all at once.
func TestNoBanking(t *testing.T) {
	clk := testclock.New(start.Add(time.Hour))
	r := newRoom(t, clk, 0)
	s := saleWith("s", 1, surge.QueueFIFO, 60)
	for i := range 5 {
		st := join(t, r, s, fmt.Sprintf("u%d", i))
		if want := clk.Now().Add(time.Duration(i) * time.Second); !st.AdmitAt.Equal(want) {
			t.Errorf("u%d admitted at %v, want %v", i, st.AdmitAt, want)
		}
	}
}

func TestQueueBound(t *testing.T) {
	clk := testclock.New(start)
	r := newRoom(t, clk, 3)
	s := saleWith("s", 1, surge.QueueFIFO, 60)
	for i := range 3 {
		join(t, r, s, fmt.Sprintf("u%d", i))
	}
	_, _, err := r.Join(context.Background(), s, "u3")
	wantCode(t, err, surge.CodeQueueFull, "full")
	// Those in the queue keep their place; other sales have their own bound.
	if _, created, err := r.Join(context.Background(), s, "u0"); err != nil || created {
		t.Errorf("rejoin of a full queue: created %v, %v", created, err)
	}
	join(t, r, saleWith("other", 1, surge.QueueFIFO, 60), "u3")
}

func TestJoinRefusals(t *testing.T) {
	clk := testclock.New(start)
	r := newRoom(t, clk, 0)
	plain := &surge.Sale{ID: "plain", StartsAt: start}
	_, _, err := r.Join(context.Background(), plain, "u")
	wantCode(t, err, surge.CodeNoWaitingRoom, "no waiting room")
	_, err = r.Status(context.Background(), plain, "x")
	wantCode(t, err, surge.CodeNoWaitingRoom, "no waiting room")
	ended := saleWith("ended", 1, surge.QueueFIFO, 60)
	ended.EndsAt = start
	_, _, err = r.Join(context.Background(), ended, "u")
	wantCode(t, err, surge.CodeEnded, "ended")
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(start.Add(-time.Minute))
	r := newRoom(t, clk, 0)
	s := saleWith("s", 1, surge.QueueFIFO, 30)
	other := saleWith("other", 1, surge.QueueFIFO, 30)
	alice := join(t, r, s, "alice").Ticket
	bob := join(t, r, s, "bob").Ticket // slot 1: admitted at start+1s
	aliceOther := join(t, r, other, "alice").Ticket
	forger, _ := New(Config{Secret: []byte("another server's secret, 32 byte")})
	forged := forger.signer.sign(ticket{SaleID: "s", UserID: "alice", Seq: 1, Slot: 0, Issued: start})

	wantCode(t, r.Check(ctx, s, "alice", ""), surge.CodeNotAdmitted, "join it with POST /v1/sales/s/queue")
	wantCode(t, r.Check(ctx, s, "alice", "garbage"), surge.CodeNotAdmitted, "not a waiting-room ticket")
	wantCode(t, r.Check(ctx, s, "alice", forged), surge.CodeNotAdmitted, "signature does not verify")
	wantCode(t, r.Check(ctx, s, "alice", aliceOther), surge.CodeNotAdmitted, "for sale other, not s")
	wantCode(t, r.Check(ctx, s, "mallory", alice), surge.CodeNotAdmitted, "issued to another buyer")
	e := wantCode(t, r.Check(ctx, s, "alice", alice), surge.CodeNotAdmitted, "not admitted yet")
	if e.RetryAfter != time.Minute {
		t.Errorf("RetryAfter = %v, want 1m", e.RetryAfter)
	}
	clk.Set(start)
	if err := r.Check(ctx, s, "alice", alice); err != nil {
		t.Errorf("alice at the start: %v", err)
	}
	e = wantCode(t, r.Check(ctx, s, "bob", bob), surge.CodeNotAdmitted, "in about 1 s")
	if e.RetryAfter != time.Second {
		t.Errorf("bob's RetryAfter = %v, want 1s", e.RetryAfter)
	}
	clk.Set(start.Add(30*time.Second - time.Nanosecond))
	if err := r.Check(ctx, s, "alice", alice); err != nil {
		t.Errorf("alice at the last instant: %v", err)
	}
	clk.Set(start.Add(30 * time.Second))
	wantCode(t, r.Check(ctx, s, "alice", alice), surge.CodeNotAdmitted, "expired")
	if err := r.Check(ctx, s, "bob", bob); err != nil {
		t.Errorf("bob until start+31s: %v", err)
	}
	// A ticket read back from Status is as good as the first.
	if err := r.Check(ctx, s, "bob", status(t, r, s, bob).Ticket); err != nil {
		t.Errorf("bob with a fresh ticket: %v", err)
	}
	// Joining again does not renew an expired admission.
	again := join(t, r, s, "alice")
	if again.State != Expired {
		t.Errorf("alice rejoined: %+v, want expired", again)
	}
	wantCode(t, r.Check(ctx, s, "alice", again.Ticket), surge.CodeNotAdmitted, "expired")
}

func TestStatusRefusals(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(start)
	r := newRoom(t, clk, 0)
	s := saleWith("s", 1, surge.QueueLottery, 30)
	tk := join(t, r, saleWith("other", 1, surge.QueueFIFO, 30), "alice").Ticket
	for _, c := range []struct{ ticket, msg string }{
		{"", "Waiting-Room-Ticket header"},
		{"!!!", "not a waiting-room ticket"},
		{strings.Repeat("A", MaxTicketLen+1), "not a waiting-room ticket"},
		{tk, "for sale other, not s"},
	} {
		_, err := r.Status(ctx, s, c.ticket)
		wantCode(t, err, surge.CodeInvalidTicket, c.msg)
	}
	// A lottery ticket from before the draw, whose entry is gone (another
	// process, same key): join again.
	lost := r.signer.sign(ticket{SaleID: "s", UserID: "ghost", Seq: 9, Draw: 5, Slot: Unassigned, Issued: start})
	_, err := r.Status(ctx, s, lost)
	wantCode(t, err, surge.CodeInvalidTicket, "join again")
	wantCode(t, r.Check(ctx, s, "ghost", lost), surge.CodeNotAdmitted, "join again")
}

// TestConcurrentJoins: many buyers at once, some twice; every entry has a
// unique seq and slot.
func TestConcurrentJoins(t *testing.T) {
	for _, order := range []string{surge.QueueFIFO, surge.QueueLottery} {
		t.Run(order, func(t *testing.T) {
			clk := testclock.New(start.Add(-time.Second))
			r := newRoom(t, clk, 0)
			s := saleWith("s", 100, order, 60)
			const users = 300
			tickets := make([]string, users*2)
			var wg sync.WaitGroup
			for i := range users * 2 {
				wg.Go(func() {
					st, _, err := r.Join(context.Background(), s, fmt.Sprintf("u%d", i%users))
					if err != nil {
						t.Error(err)
						return
					}
					tickets[i] = st.Ticket
				})
			}
			wg.Wait()
			clk.Set(start)
			seqs, slots := map[int64]string{}, map[int64]string{}
			for i, tk := range tickets {
				st := status(t, r, s, tk)
				tt, _ := r.signer.parse(st.Ticket)
				user := fmt.Sprintf("u%d", i%users)
				if u, ok := seqs[tt.Seq]; ok && u != user {
					t.Fatalf("seq %d held by %s and %s", tt.Seq, u, user)
				}
				if u, ok := slots[tt.Slot]; ok && u != user {
					t.Fatalf("slot %d held by %s and %s", tt.Slot, u, user)
				}
				seqs[tt.Seq], slots[tt.Slot] = user, user
			}
			if len(seqs) != users || len(slots) != users {
				t.Errorf("%d seqs and %d slots for %d buyers", len(seqs), len(slots), users)
			}
		})
	}
}
