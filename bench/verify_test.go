package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// cleanSale is a consistent state: stock 10, limit 2, 5 live units
// (a: 1+1, b: 2, c: 1), plus a cancelled and an expired order the run did
// not make (a run cancels nothing, and its holds outlast it), and a
// confirmation of a replay.
func cleanSale() (api.Sale, []api.Order, []Confirmation) {
	sale := api.Sale{ID: "drop", Stock: 10, Remaining: 5, PerUserLimit: 2}
	order := func(id, user string, q int64, status, key string) api.Order {
		return api.Order{ID: id, SaleID: "drop", UserID: user, Quantity: q, Status: status, IdempotencyKey: key}
	}
	orders := []api.Order{
		order("o1", "a", 1, "reserved", "ka1"),
		order("o2", "b", 2, "paid", "kb"),
		order("o3", "c", 2, "cancelled", "kc1"),
		order("o4", "c", 1, "reserved", "kc2"),
		order("o5", "d", 2, "expired", ""),
		order("o6", "a", 1, "paid", "ka2"),
	}
	confirmed := []Confirmation{
		{OrderID: "o1", UserID: "a", Key: "ka1", Quantity: 1},
		{OrderID: "o2", UserID: "b", Key: "kb", Quantity: 2},
		{OrderID: "o2", UserID: "b", Key: "kb", Quantity: 2}, // a replay
		{OrderID: "o4", UserID: "c", Key: "kc2", Quantity: 1},
		{OrderID: "o6", UserID: "a", Key: "ka2", Quantity: 1},
	}
	return sale, orders, confirmed
}

// exportedAt is when the unit tests' exports were read: before every
// fixture's hold ends.
var exportedAt = time.Date(2026, 12, 5, 17, 5, 0, 0, time.UTC)

func TestVerifyClean(t *testing.T) {
	sale, orders, confirmed := cleanSale()
	v := Verify(sale, orders, confirmed, exportedAt)
	if !v.OK {
		t.Fatalf("clean sale fails: %+v", v.Checks)
	}
	want := Verdict{OK: true, Stock: 10, Remaining: 5, Orders: 6, LiveUnits: 5, Confirmed: 4}
	got := *v
	got.Checks = nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("figures %+v, want %+v", got, want)
	}
	var names []string
	for _, c := range v.Checks {
		names = append(names, c.Name)
		if c.Detail == "" {
			t.Errorf("check %q has no detail", c.Name)
		}
	}
	wantNames := []string{CheckNoOversell, CheckPerUserLimit, CheckConfirmed, CheckOneOrderPerKey, CheckReplays, CheckRemaining, CheckWellFormed}
	if !slices.Equal(names, wantNames) {
		t.Errorf("checks %q, want %q", names, wantNames)
	}
	if v := Verify(api.Sale{Stock: 3, Remaining: 3, PerUserLimit: 1}, nil, nil, exportedAt); !v.OK {
		t.Errorf("a sale without orders fails: %+v", v.Checks)
	}
}

func TestVerifyCatches(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *api.Sale, orders *[]api.Order, confirmed *[]Confirmation)
		fails  string // the check that must fail
		detail string // in its detail
		also   string // another check that must fail, if any
	}{
		{
			name: "oversell",
			mutate: func(s *api.Sale, orders *[]api.Order, _ *[]Confirmation) {
				for i := range 6 {
					*orders = append(*orders, api.Order{ID: fmt.Sprintf("x%d", i), SaleID: "drop", UserID: fmt.Sprintf("x%d", i), Quantity: 1, Status: "reserved"})
				}
				s.Remaining = -1 // consistent with 11 live units: only the oversell shows
			},
			fails:  CheckNoOversell,
			detail: "order x5 (user x5, 1 units) brought the total to 11",
		},
		{
			name: "lost confirmation",
			mutate: func(_ *api.Sale, _ *[]api.Order, c *[]Confirmation) {
				*c = append(*c, Confirmation{OrderID: "o404", UserID: "e", Key: "ke", Quantity: 1})
			},
			fails:  CheckConfirmed,
			detail: "order o404 confirmed to user e is missing",
		},
		{
			name: "confirmation for another quantity",
			mutate: func(_ *api.Sale, _ *[]api.Order, c *[]Confirmation) {
				(*c)[0].Quantity = 2
			},
			fails:  CheckConfirmed,
			detail: "order o1 confirmed to user a for 2 units is user a with 1 units",
		},
		{
			name: "confirmation for another user",
			mutate: func(_ *api.Sale, _ *[]api.Order, c *[]Confirmation) {
				(*c)[3].UserID = "z" // o4
			},
			fails:  CheckConfirmed,
			detail: "order o4 confirmed to user z",
		},
		{
			name: "duplicate key",
			mutate: func(_ *api.Sale, orders *[]api.Order, _ *[]Confirmation) {
				*orders = append(*orders, api.Order{ID: "o7", SaleID: "drop", UserID: "b", Quantity: 2, Status: "cancelled", IdempotencyKey: "kb"})
			},
			fails:  CheckOneOrderPerKey,
			detail: `user b key "kb" has orders o2 and o7`,
		},
		{
			name: "same key, other users",
			mutate: func(s *api.Sale, orders *[]api.Order, _ *[]Confirmation) {
				// Keys are scoped to the buyer: not a violation.
				*orders = append(*orders, api.Order{ID: "o7", SaleID: "drop", UserID: "e", Quantity: 1, Status: "reserved", IdempotencyKey: "kb"})
				s.Remaining--
			},
		},
		{
			name: "user over the limit",
			mutate: func(s *api.Sale, orders *[]api.Order, _ *[]Confirmation) {
				*orders = append(*orders, api.Order{ID: "o7", SaleID: "drop", UserID: "a", Quantity: 1, Status: "reserved", IdempotencyKey: "ka3"})
				s.Remaining--
			},
			fails:  CheckPerUserLimit,
			detail: "user a reached 3 units with order o7",
		},
		{
			name: "inconsistent replay",
			mutate: func(_ *api.Sale, _ *[]api.Order, c *[]Confirmation) {
				*c = append(*c, Confirmation{OrderID: "o6", UserID: "a", Key: "ka1", Quantity: 1})
			},
			fails:  CheckReplays,
			detail: `user a key "ka1" was confirmed as o1 and as o6`,
			// o6 is key ka2's order: the 201 for ka1 holds no order.
			also: CheckConfirmed,
		},
		{
			name:   "wrong remaining",
			mutate: func(s *api.Sale, _ *[]api.Order, _ *[]Confirmation) { s.Remaining++ },
			fails:  CheckRemaining,
			detail: "remaining 6, but stock 10 − 5 live units = 5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sale, orders, confirmed := cleanSale()
			tt.mutate(&sale, &orders, &confirmed)
			v := Verify(sale, orders, confirmed, exportedAt)
			if v.OK != (tt.fails == "") {
				t.Errorf("OK = %v, want %v", v.OK, tt.fails == "")
			}
			for _, c := range v.Checks {
				if c.OK != (c.Name != tt.fails && c.Name != tt.also) {
					t.Errorf("check %q: OK = %v (%s)", c.Name, c.OK, c.Detail)
				}
				if c.Name == tt.fails && !strings.Contains(c.Detail, tt.detail) {
					t.Errorf("check %q: detail %q lacks %q", c.Name, c.Detail, tt.detail)
				}
			}
		})
	}
}

// A detail lists the first few violations and counts the rest.
func TestVerifyDetailIsBounded(t *testing.T) {
	sale, orders, confirmed := cleanSale()
	for i := range 8 {
		confirmed = append(confirmed, Confirmation{OrderID: fmt.Sprintf("lost%d", i), UserID: "e", Key: fmt.Sprint(i), Quantity: 1})
	}
	v := Verify(sale, orders, confirmed, exportedAt)
	var c Check
	for _, c = range v.Checks {
		if c.Name == CheckConfirmed {
			break
		}
	}
	if c.OK || strings.Count(c.Detail, "lost confirmation") != maxListedViolations || !strings.Contains(c.Detail, "and 3 more") ||
		!strings.HasPrefix(c.Detail, "8 of 13 confirmations do not match the export (8 missing)") {
		t.Errorf("detail %q: want 8 of 13 missing, %d listed, and 3 more", c.Detail, maxListedViolations)
	}
}

// TestVerifyRunJudgesTheRun: a run whose purchases were refused, or that
// reserved nothing while units were left, tested nothing, whatever the
// export says; it fails with the reason.
func TestVerifyRunJudgesTheRun(t *testing.T) {
	tests := []struct {
		name      string
		status    map[int]int64
		codes     map[string]int64
		remaining int64 // of a sale of 1000 with no orders
		fails     []string
		detail    string // in the verdict line
	}{
		{
			name:      "every purchase refused 401",
			status:    map[int]int64{401: 10_000},
			codes:     map[string]int64{"unauthorized": 10_000},
			remaining: 1000,
			fails:     []string{CheckAccepted, CheckReserved},
			detail:    "10,000 of 10,000 answers (100.0%) were 400/401/403, over 1%: 401 × 10,000",
		},
		{
			name:      "2% answered 400",
			status:    map[int]int64{201: 980, 409: 8820, 400: 200},
			codes:     map[string]int64{"reserved": 980, "sold_out": 8820, "invalid_request": 200},
			remaining: 20,
			fails:     []string{CheckAccepted},
			detail:    "200 of 10,000 answers (2.0%) were 400/401/403, over 1%: 400 × 200",
		},
		{
			name:      "1% answered 403 is tolerated",
			status:    map[int]int64{201: 1000, 409: 8900, 403: 100},
			codes:     map[string]int64{"reserved": 1000, "sold_out": 8900, "not_admitted": 100},
			remaining: 0,
		},
		{
			name:      "nothing reserved while stock was left",
			status:    map[int]int64{409: 500},
			codes:     map[string]int64{"not_started": 500},
			remaining: 1000,
			fails:     []string{CheckReserved},
			detail:    "no purchase reserved although 1,000 of 1,000 units were left; the answers: not_started × 500",
		},
		{
			name:      "nothing reserved, only replays, while stock was left",
			status:    map[int]int64{201: 5, 503: 95},
			codes:     map[string]int64{"replayed": 5, "overloaded": 95},
			remaining: 10,
			fails:     []string{CheckReserved},
			detail:    "the answers: overloaded × 95, replayed × 5",
		},
		{
			name:      "nothing reserved from a sold-out sale",
			status:    map[int]int64{409: 300},
			codes:     map[string]int64{"sold_out": 300},
			remaining: 0,
		},
		{
			name:      "no answer at all",
			status:    map[int]int64{},
			codes:     map[string]int64{"transport_error": 40},
			remaining: 1000,
			fails:     []string{CheckAccepted, CheckReserved},
			detail:    "none of the 40 purchases sent was decided (40 transport errors, 0 answers 5xx, 429 or 503): the run tested nothing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Result{Status: tt.status, Codes: tt.codes}
			for _, n := range tt.status {
				r.Completed += n
			}
			r.Errors = tt.codes["transport_error"]
			r.Sent = r.Completed + r.Errors
			sale := api.Sale{ID: "s", Stock: 1000, Remaining: tt.remaining, PerUserLimit: 1}
			// The export agrees with the sale: only the run's checks can fail.
			var orders []api.Order
			var confirmed []Confirmation
			for i := range 1000 - tt.remaining {
				id := fmt.Sprint("o", i)
				orders = append(orders, api.Order{ID: id, SaleID: "s", UserID: id, Quantity: 1, Status: "reserved", IdempotencyKey: "k"})
				confirmed = append(confirmed, Confirmation{OrderID: id, UserID: id, Key: "k", Quantity: 1})
			}
			v := VerifyRun(r, sale, orders, confirmed, exportedAt)
			var failed []string
			for _, c := range v.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if !slices.Equal(failed, tt.fails) || v.OK != (len(tt.fails) == 0) {
				t.Fatalf("failed checks %q (OK %v), want %q; checks: %+v", failed, v.OK, tt.fails, v.Checks)
			}
			line := VerdictLine(v)
			if len(tt.fails) == 0 {
				if !strings.HasPrefix(line, "VERDICT: PASS") {
					t.Errorf("verdict %q, want a pass", line)
				}
				return
			}
			if !strings.HasPrefix(line, "VERDICT: FAIL — "+tt.fails[0]+": ") || !strings.Contains(line, tt.detail) {
				t.Errorf("verdict %q, want FAIL quoting %q and %q", line, tt.fails[0], tt.detail)
			}
		})
	}
}

// TestVerifyConfirmedOrderExpiredInTime: a confirmed order whose hold had
// ended when the export was read may be expired (nobody paid for it); one
// whose hold had not is a confirmation lost (TestVerifyConfirmedOrderNotLive).
func TestVerifyConfirmedOrderExpiredInTime(t *testing.T) {
	sale := api.Sale{ID: "s", Stock: 2, Remaining: 2, PerUserLimit: 1}
	orders := []api.Order{{ID: "a", SaleID: "s", UserID: "a", Quantity: 1, Status: "expired", IdempotencyKey: "k",
		CreatedAt: "2026-12-05T16:00:00Z", ExpiresAt: "2026-12-05T16:15:00Z"}}
	confirmed := []Confirmation{{OrderID: "a", UserID: "a", Key: "k", Quantity: 1}}
	if v := Verify(sale, orders, confirmed, exportedAt); !v.OK {
		t.Errorf("an order expired after its hold fails the verdict: %+v", v.Checks)
	}
}

// TestVerifyRunLimitLoweredAfterRun: the operator lowers the per-user limit
// of a live sale (PATCH, 3 to 1) after the bench's buyers bought up to 3
// units each under the limit of the time. A lowered limit binds new
// purchases only: the buyers keep what they hold (docs/architecture.md),
// so nobody is over a limit. Judged by the limit read after the run, every
// buyer of 2 or 3 units was a violation. The real API (engine, SQLite)
// sells.
func TestVerifyRunLimitLoweredAfterRun(t *testing.T) {
	for _, limit := range []int64{1, 2, 5} {
		t.Run(fmt.Sprintf("to %d", limit), func(t *testing.T) {
			srv := newServer(t, serverOptions{})
			ctx := context.Background()
			admin := client.New(srv.URL, testAdmin)
			sale, err := admin.CreateSale(ctx, api.NewSale{Name: new("steered"), Stock: new(int64(1000)), PerUserLimit: new(int64(3))})
			if err != nil {
				t.Fatal(err)
			}
			res, confirmed, err := Run(ctx, Config{Target: srv.URL, AdminToken: testAdmin, SaleID: sale.ID,
				Users: 40, MaxQuantity: 3, UserPrefix: "p-", Connections: 4, Seed: 1}, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, err := admin.UpdateSale(ctx, sale.ID, api.SalePatch{PerUserLimit: new(limit)}); err != nil {
				t.Fatal(err)
			}
			got, orders, err := Fetch(ctx, admin, sale.ID)
			if err != nil {
				t.Fatal(err)
			}
			if v := VerifyRun(res, got, orders, confirmed, time.Now()); !v.OK {
				t.Errorf("buyers bought up to 3 units under a limit of 3, lowered to %d after the run; verdict:\n%s", limit, VerdictLine(v))
			}
		})
	}
}
