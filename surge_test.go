package surge_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

func TestValidID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"Sale_2026-drop", true},
		{strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
		{"", false},
		{"has space", false},
		{"slash/", false},
		{"dot.", false},
		{"é", false},
		{"nul\x00", false},
	} {
		if got := surge.ValidID(c.in); got != c.want {
			t.Errorf("ValidID(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestValidKey(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"k", true},
		{"a key with spaces and ~!@#", true},
		{strings.Repeat("k", 128), true},
		{strings.Repeat("k", 129), false},
		{"", false},
		{"tab\t", false},
		{"newline\n", false},
		{"del\x7f", false},
		{"ü", false},
	} {
		if got := surge.ValidKey(c.in); got != c.want {
			t.Errorf("ValidKey(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewSaleDefaults(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	s, err := surge.NewSale(surge.SaleInput{Name: ptr("Phone"), Stock: ptr(int64(10))}, now)
	if err != nil {
		t.Fatal(err)
	}
	wantStart := now.UTC().Truncate(time.Millisecond)
	if !surge.ValidID(s.ID) || !strings.HasPrefix(s.ID, "s_") {
		t.Errorf("generated id %q", s.ID)
	}
	if s.PerUserLimit != 1 || s.HoldSeconds != surge.DefaultHold || s.Currency != "USD" || s.PriceCents != 0 ||
		!s.StartsAt.Equal(wantStart) || s.StartsAt.Location() != time.UTC || !s.EndsAt.IsZero() {
		t.Errorf("defaults: %+v", s)
	}
}

func TestNewSaleRejects(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	valid := func() surge.SaleInput { return surge.SaleInput{Name: ptr("n"), Stock: ptr(int64(5))} }
	for name, mutate := range map[string]func(*surge.SaleInput){
		"bad id":           func(in *surge.SaleInput) { in.ID = ptr("no spaces") },
		"no name":          func(in *surge.SaleInput) { in.Name = nil },
		"blank name":       func(in *surge.SaleInput) { in.Name = ptr("   ") },
		"long name":        func(in *surge.SaleInput) { in.Name = ptr(strings.Repeat("n", 201)) },
		"bad utf8 name":    func(in *surge.SaleInput) { in.Name = ptr("\xff") },
		"no stock":         func(in *surge.SaleInput) { in.Stock = nil },
		"zero stock":       func(in *surge.SaleInput) { in.Stock = ptr(int64(0)) },
		"huge stock":       func(in *surge.SaleInput) { in.Stock = ptr(int64(surge.MaxStock + 1)) },
		"zero limit":       func(in *surge.SaleInput) { in.PerUserLimit = ptr(int64(0)) },
		"limit over stock": func(in *surge.SaleInput) { in.PerUserLimit = ptr(int64(6)) },
		"negative price":   func(in *surge.SaleInput) { in.PriceCents = ptr(int64(-1)) },
		// 4 units at 2^62+1 cents come to 2^64+4 cents, which wraps to 4:
		// a payment of 4 cents would pay them.
		"price whose amount wraps": func(in *surge.SaleInput) { in.PriceCents = ptr(int64(1<<62 + 1)) },
		"price over the maximum":   func(in *surge.SaleInput) { in.PriceCents = ptr(int64(surge.MaxPriceCents + 1)) },
		"lower currency":           func(in *surge.SaleInput) { in.Currency = ptr("usd") },
		"long currency":            func(in *surge.SaleInput) { in.Currency = ptr("EURO") },
		"end before start":         func(in *surge.SaleInput) { in.EndsAt = ptr(now.Add(-time.Second)) },
		"end equals start":         func(in *surge.SaleInput) { in.StartsAt, in.EndsAt = ptr(now), ptr(now) },
		"zero hold":                func(in *surge.SaleInput) { in.HoldSeconds = ptr(int64(0)) },
		"hold over a week":         func(in *surge.SaleInput) { in.HoldSeconds = ptr(int64(surge.MaxHoldSeconds + 1)) },
		"start after 9999":         func(in *surge.SaleInput) { in.StartsAt = ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) },
		"end before year 0":        func(in *surge.SaleInput) { in.EndsAt = ptr(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)) },
		// RFC 3339 has a year 0000; google.protobuf.Timestamp does not.
		"start in year 0000": func(in *surge.SaleInput) { in.StartsAt = ptr(time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)) },
	} {
		t.Run(name, func(t *testing.T) {
			in := valid()
			mutate(&in)
			_, err := surge.NewSale(in, now)
			if surge.ErrorCode(err) != surge.CodeInvalid {
				t.Fatalf("err = %v, want invalid_request", err)
			}
		})
	}
}

// TestSaleNames: a name is shown to buyers and operators, in pages, logs
// and terminals, so it must not carry characters that control how the text
// around it is shown.
func TestSaleNames(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"Phone drop", true},
		{"Café crème – édition limitée", true},
		{"שקל חדש", true},           // right-to-left letters are text, not controls
		{"تخفيضات", true},           // so is Arabic
		{"👩‍👩‍👧 family pack", true}, // a zero-width joiner inside an emoji
		{"名前", true},
		{strings.Repeat("n", surge.MaxNameLen), true},
		{"nul\x00", false},
		{"tab\tname", false},
		{"line\nbreak", false},
		{"carriage\rreturn", false},
		{"\x1b[31mred", false},     // a terminal escape
		{"del\x7f", false},         // DEL
		{"next\u0085line", false},  // a C1 control
		{"csi\u009b31m", false},    // a C1 control
		{"a\u2028b", false},        // line separator
		{"a\u2029b", false},        // paragraph separator
		{"Phone \u202egnp", false}, // right-to-left override
		{"\u202dLTR", false},       // left-to-right override
		{"\u202aembed", false},     // left-to-right embedding
		{"\u202bembed", false},     // right-to-left embedding
		{"\u202cpop", false},       // pop directional formatting
		{"\u2066iso\u2069", false},
		{"\u2067iso", false},
		{"\u2068iso", false},
		{"\u200emark", false}, // left-to-right mark
		{"\u200fmark", false}, // right-to-left mark
		{"\u061cmark", false}, // Arabic letter mark
		{"\xff", false},
	} {
		_, err := surge.NewSale(surge.SaleInput{Name: &c.name, Stock: ptr(int64(1))}, now)
		if got := err == nil; got != c.ok {
			t.Errorf("name %+q: accepted %v, want %v (%v)", c.name, got, c.ok, err)
		}
		if err != nil && surge.ErrorCode(err) != surge.CodeInvalid {
			t.Errorf("name %+q: %v, want invalid_request", c.name, err)
		}
	}
}

func TestSaleStatus(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	s := surge.Sale{StartsAt: start, EndsAt: start.Add(time.Hour)}
	for _, c := range []struct {
		at        time.Time
		remaining int64
		want      surge.SaleStatus
	}{
		{start.Add(-time.Millisecond), 5, surge.SaleUpcoming},
		{start, 5, surge.SaleLive},
		{start, 0, surge.SaleSoldOut},
		{start.Add(time.Hour - time.Millisecond), 1, surge.SaleLive},
		{start.Add(time.Hour), 5, surge.SaleEnded},
		{start.Add(time.Hour), 0, surge.SaleEnded},
	} {
		if got := s.Status(c.at, c.remaining); got != c.want {
			t.Errorf("Status(%v, %d) = %s, want %s", c.at, c.remaining, got, c.want)
		}
	}
	open := surge.Sale{StartsAt: start}
	if got := open.Status(start.AddDate(100, 0, 0), 1); got != surge.SaleLive {
		t.Errorf("a sale without end is %s a century later", got)
	}
}

// idMakers make n ids of one millisecond: one at a time (Next), and as a
// batch (Fill, over more than one read of the random source).
var idMakers = []struct {
	name string
	make func(g *surge.OrderIDs, now time.Time, n int) []string
}{
	{"Next", func(g *surge.OrderIDs, now time.Time, n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = g.Next(now)
		}
		return ids
	}},
	{"Fill", func(g *surge.OrderIDs, now time.Time, n int) []string {
		ids := make([]string, n)
		g.Fill(now, ids)
		return ids
	}},
}

func TestOrderIDsSortAndDiffer(t *testing.T) {
	for _, m := range idMakers {
		t.Run(m.name, func(t *testing.T) {
			var g surge.OrderIDs
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var ids []string
			seen := map[string]bool{}
			for ms := range 100 {
				for _, id := range m.make(&g, base.Add(time.Duration(ms)*time.Millisecond), 100) {
					if !surge.ValidID(id) || len(id) != 28 || !strings.HasPrefix(id, "o_") {
						t.Fatalf("id %q: invalid or not \"o_\" and 26 characters", id)
					}
					if seen[id] {
						t.Fatalf("duplicate id %q", id)
					}
					seen[id] = true
					ids = append(ids, id)
				}
			}
			// Across milliseconds, ids sort by time; within one they need not.
			for i := 100; i < len(ids); i += 100 {
				if slices.Max(ids[i-100:i]) >= slices.Min(ids[i:i+100]) {
					t.Fatalf("ids of millisecond %d do not all sort before those of the next", i/100-1)
				}
			}
		})
	}
}

// TestOrderIDsConcurrent: generators are shared by every sale's owner
// goroutine, so ids must differ under concurrency (run with -race).
func TestOrderIDsConcurrent(t *testing.T) {
	for _, m := range idMakers {
		t.Run(m.name, func(t *testing.T) {
			var g surge.OrderIDs
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // one millisecond for all
			const workers, batches, each = 8, 20, 100
			out := make([][]string, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for range batches {
						out[w] = append(out[w], m.make(&g, now, each)...)
					}
				})
			}
			wg.Wait()
			seen := make(map[string]bool, workers*batches*each)
			for _, ids := range out {
				for _, id := range ids {
					if seen[id] {
						t.Fatalf("duplicate id %q", id)
					}
					seen[id] = true
				}
			}
		})
	}
}

// TestOrderIDsRevealOnlyTheMillisecond: an id says when it was made, to the
// millisecond, and nothing about the orders made beside it. Of two ids of
// one millisecond, which came first is a coin toss (a counter would always
// put the later one after, and their gap would count the orders between).
func TestOrderIDsRevealOnlyTheMillisecond(t *testing.T) {
	for _, m := range idMakers {
		t.Run(m.name, func(t *testing.T) {
			var g surge.OrderIDs
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			const pairs = 1000
			inverted := 0
			// Pairs within one batch, across the reads of the random source.
			ids := m.make(&g, now, 2*pairs)
			for i := 0; i < len(ids); i += 2 {
				a, b := ids[i], ids[i+1]
				if b < a {
					inverted++
				}
				if a[:10] != b[:10] {
					t.Fatalf("ids of one millisecond differ in their time part: %q, %q", a, b)
				}
			}
			// Binomial(1000, 1/2) lies outside 350..650 with odds under 1e-20.
			if inverted < 350 || inverted > 650 {
				t.Errorf("%d of %d later ids of the same millisecond sort first; want about half", inverted, pairs)
			}
		})
	}
}

func TestErrorCodes(t *testing.T) {
	err := surge.Errorf(surge.CodeSaleNotFound, "no sale %q", "x")
	if !surge.HasCode(err, surge.CodeSaleNotFound) || surge.HasCode(err, surge.CodeOrderNotFound) {
		t.Error("HasCode must match on the code alone")
	}
	wrapped := fmt.Errorf("outer: %w", errors.Join(errors.New("plain"), err))
	if !surge.HasCode(wrapped, surge.CodeSaleNotFound) || surge.HasCode(nil, surge.CodeSaleNotFound) {
		t.Error("HasCode must look through wrapping and joins")
	}
	// Sentinels compare by identity: another error of the same code is not
	// the sentinel (a storage outage is no timeout, an open breaker no rebuild).
	if errors.Is(err, surge.ErrSaleNotFound) || !errors.Is(fmt.Errorf("x: %w", surge.ErrSaleNotFound), surge.ErrSaleNotFound) {
		t.Error("errors.Is must compare sentinels by identity")
	}
	if errors.Is(surge.Errorf(surge.CodeUnavailable, "redis down"), surge.ErrUnavailable) {
		t.Error("an error of the same code must not be the sentinel")
	}
	if surge.ErrorCode(errors.New("plain")) != "" || surge.ErrorCode(err) != surge.CodeSaleNotFound {
		t.Error("ErrorCode")
	}
}

// A refused Cancel or Pay names what the order became, so a retry of a
// call whose answer was lost reads that the first one took; an order the
// refusal cannot describe gets the plain sentinel.
func TestRefusalSaysWhy(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ends := now.Add(time.Minute)
	order := func(st surge.OrderStatus, expires time.Time) surge.Order {
		return surge.Order{ID: "o_1", Status: st, ExpiresAt: expires}
	}
	cases := []struct {
		name string
		o    surge.Order
		want string // message of NotCancellable; NotPayable's ends in "paid"
	}{
		{"cancelled", order(surge.OrderCancelled, ends), "order o_1 is already cancelled; only a reserved order can be cancelled"},
		{"paid", order(surge.OrderPaid, ends), "order o_1 is already paid; only a reserved order can be cancelled"},
		{"expired", order(surge.OrderExpired, now.Add(-time.Minute)),
			"order o_1 expired: its hold ended at 2026-12-05T11:59:00.000Z; only a reserved order can be cancelled"},
		{"hold ended, not yet expired", order(surge.OrderReserved, now),
			"order o_1 expired: its hold ended at 2026-12-05T12:00:00.000Z; only a reserved order can be cancelled"},
		{"reserved, hold running", order(surge.OrderReserved, ends), surge.ErrNotCancellable.Message},
		{"not read", surge.Order{}, surge.ErrNotCancellable.Message},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := surge.NotCancellable(tc.o, now)
			if c.Code != surge.CodeNotCancellable || c.Message != tc.want {
				t.Errorf("NotCancellable = %v, want not_cancellable: %s", c, tc.want)
			}
			p := surge.NotPayable(tc.o, now)
			want := strings.TrimSuffix(tc.want, "cancelled") + "paid"
			if p.Code != surge.CodeNotPayable || p.Message != want {
				t.Errorf("NotPayable = %v, want not_payable: %s", p, want)
			}
		})
	}
}

func TestNewSaleWaitingRoom(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wr := func(rate int64, order string, ticket int64) *surge.WaitingRoom {
		return &surge.WaitingRoom{AdmitPerSecond: rate, Policy: order, TicketSeconds: ticket}
	}
	for _, c := range []struct {
		name string
		in   *surge.WaitingRoom
		want string // "" accepts in; else the exact message
	}{
		{"none", nil, ""},
		{"fifo", wr(100, surge.QueueFIFO, 300), ""},
		{"lottery", wr(1, surge.QueueLottery, 1), ""},
		{"bounds", wr(surge.MaxAdmitPerSecond, surge.QueueFIFO, surge.MaxTicketSeconds), ""},
		{"zero rate", wr(0, surge.QueueFIFO, 300), "waiting_room.admit_per_second must be between 1 and 1000000"},
		{"negative rate", wr(-1, surge.QueueFIFO, 300), "waiting_room.admit_per_second must be between 1 and 1000000"},
		{"rate too high", wr(surge.MaxAdmitPerSecond+1, surge.QueueFIFO, 300), "waiting_room.admit_per_second must be between 1 and 1000000"},
		{"no order", wr(10, "", 300), `waiting_room.order must be "fifo" or "lottery"`},
		{"order in capitals", wr(10, "FIFO", 300), `waiting_room.order must be "fifo" or "lottery"`},
		{"unknown order", wr(10, "random", 300), `waiting_room.order must be "fifo" or "lottery"`},
		{"zero ticket", wr(10, surge.QueueFIFO, 0), "waiting_room.ticket_seconds must be between 1 and 86400"},
		{"ticket over a day", wr(10, surge.QueueLottery, surge.MaxTicketSeconds+1), "waiting_room.ticket_seconds must be between 1 and 86400"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := surge.SaleInput{Name: ptr("n"), Stock: ptr(int64(5)), WaitingRoom: c.in}
			s, err := surge.NewSale(in, now)
			if c.want != "" {
				var e *surge.Error
				if !errors.As(err, &e) || e.Code != surge.CodeInvalid || e.Message != c.want {
					t.Fatalf("err = %v, want invalid_request: %s", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.in == nil {
				if s.WaitingRoom != nil {
					t.Fatalf("WaitingRoom = %+v, want nil", s.WaitingRoom)
				}
				return
			}
			if s.WaitingRoom == nil || *s.WaitingRoom != *c.in {
				t.Fatalf("WaitingRoom = %+v, want %+v", s.WaitingRoom, c.in)
			}
			// The sale keeps its own copy: it is immutable.
			c.in.AdmitPerSecond++
			if s.WaitingRoom.AdmitPerSecond == c.in.AdmitPerSecond {
				t.Error("the sale shares the input's waiting room")
			}
		})
	}
}
