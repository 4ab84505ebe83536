package sqlite_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestSettleRaceReleasesOnce fights over every hold of a sold-out sale at
// the instant it ends: two cancels (a client and its retry) and, for some,
// the operator's payment, a millisecond before its end, while expiry
// passes step through the ends a millisecond at a time (each hold ends at
// a millisecond of its own). Exactly one of them may end each order, and
// its units come back at most once: the stock left, every buyer's limit
// and a reopened store must agree with the orders on disk. A unit given
// back twice shows as stock above what the orders leave, or as a buyer
// who may buy past the limit.
func TestSettleRaceReleasesOnce(t *testing.T) {
	const n = 40
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	sale := newSale(t, "race", n, 1)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	ends := make([]time.Time, n)
	for i := range n {
		out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: fmt.Sprintf("u%d", i), Quantity: 1}}, surge.At(t0.Add(time.Duration(i)*time.Millisecond)))
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("reserve %d: %+v %v", i, out, err)
		}
		ids[i], ends[i] = out[0].Order.ID, out[0].Order.ExpiresAt
	}

	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		cancelled, paid = map[string]int{}, map[string]int{}
		expired         = map[string]int{}
		unexpected      []error
		start           = make(chan struct{})
	)
	note := func(m map[string]int, id string) { mu.Lock(); m[id]++; mu.Unlock() }
	fail := func(err error) { mu.Lock(); unexpected = append(unexpected, err); mu.Unlock() }
	for i, id := range ids {
		before := ends[i].Add(-time.Millisecond)
		for range 2 {
			wg.Go(func() {
				<-start
				switch _, err := s.Cancel(ctx, id, before); {
				case err == nil:
					note(cancelled, id)
				case !surge.HasCode(err, surge.CodeNotCancellable):
					fail(fmt.Errorf("cancel %s: %w", id, err))
				}
			})
		}
		if i%3 == 0 {
			wg.Go(func() {
				<-start
				switch _, err := s.Pay(ctx, id, before); {
				case err == nil:
					note(paid, id)
				case !surge.HasCode(err, surge.CodeNotPayable):
					fail(fmt.Errorf("pay %s: %w", id, err))
				}
			})
		}
	}
	for range 2 {
		wg.Go(func() {
			<-start
			for i := range n + 1 {
				out, err := s.Expire(ctx, ends[0].Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					fail(fmt.Errorf("expire: %w", err))
				}
				for _, o := range out {
					note(expired, o.ID)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	t.Logf("cancelled %d, paid %d, expired %d", len(cancelled), len(paid), len(expired))

	var held int64
	for _, id := range ids {
		ended := cancelled[id] + paid[id] + expired[id]
		o, err := s.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ended != 1 {
			t.Errorf("order %s was ended %d times (cancelled %d, paid %d, expired %d); want once", id, ended, cancelled[id], paid[id], expired[id])
		}
		want := surge.OrderExpired
		switch {
		case cancelled[id] > 0:
			want = surge.OrderCancelled
		case paid[id] > 0:
			want = surge.OrderPaid
		}
		if o.Status != want {
			t.Errorf("order %s is %s on disk, answered %s", id, o.Status, want)
		}
		if o.Status.Live() {
			held += o.Quantity
		}
	}
	check := func(when string, stock int64) {
		t.Helper()
		if rem, err := s.Remaining(ctx, sale.ID); err != nil || rem != stock-held {
			t.Errorf("%s: remaining %d (%v); the orders on disk leave %d", when, rem, err, stock-held)
		}
	}
	check("after the race", n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	check("after a reopen", n)

	// Each buyer may hold one unit: whoever's order ended buys one again
	// and no more, whoever paid buys none. The stock doubles first, so
	// that only the limit can refuse.
	later := ends[n-1].Add(time.Second)
	if _, err := s.UpdateSale(ctx, sale.ID, surge.SalePatch{Stock: new(int64(2 * n))}, surge.At(later)); err != nil {
		t.Fatal(err)
	}
	check("after a restock", 2*n)
	for i, id := range ids {
		user := fmt.Sprintf("u%d", i)
		batch := []surge.Purchase{{UserID: user, Quantity: 1}, {UserID: user, Quantity: 1}}
		out, _, err := s.Reserve(ctx, sale.ID, batch, surge.At(later))
		if err != nil {
			t.Fatal(err)
		}
		want := []surge.Code{surge.CodeReserved, surge.CodeLimitReached}
		if paid[id] > 0 {
			want = []surge.Code{surge.CodeLimitReached, surge.CodeLimitReached}
		}
		if out[0].Code != want[0] || out[1].Code != want[1] {
			t.Errorf("buyer %s (paid %v) bought one unit, then another: %s, %s; want %s, %s",
				user, paid[id] > 0, out[0].Code, out[1].Code, want[0], want[1])
		}
	}
	if rem, err := s.Remaining(ctx, sale.ID); err != nil || rem != n {
		t.Errorf("after every buyer bought back: remaining %d (%v), want %d", rem, err, n)
	}
}

// TestSteerRacesSettles moves a sold-out sale's stock up and down while
// its holds are cancelled and expire: every change of the stock is
// judged against the units held at its moment, so none may take the
// stock below them, and the units left always equal the stock less what
// the orders on disk hold, before and after a reopen.
func TestSteerRacesSettles(t *testing.T) {
	const n = 30
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	sale := newSale(t, "steer", n, 1)
	if err := s.CreateSale(ctx, sale); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		out, _, err := s.Reserve(ctx, sale.ID, []surge.Purchase{{UserID: fmt.Sprintf("u%d", i), Quantity: 1}}, surge.At(t0))
		if err != nil || out[0].Code != surge.CodeReserved {
			t.Fatalf("reserve %d: %+v %v", i, out, err)
		}
		ids[i] = out[0].Order.ID
	}
	end := t0.Add(sale.Hold())
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errMu sync.Mutex
		errs  []error
	)
	fail := func(err error) { errMu.Lock(); errs = append(errs, err); errMu.Unlock() }
	for i, id := range ids[:n/2] {
		wg.Go(func() {
			<-start
			_, err := s.Cancel(ctx, id, t0.Add(time.Duration(i)*time.Millisecond))
			if err != nil && !surge.HasCode(err, surge.CodeNotCancellable) { // expired first
				fail(fmt.Errorf("cancel %s: %w", id, err))
			}
		})
	}
	wg.Go(func() {
		<-start
		if _, err := s.Expire(ctx, end); err != nil {
			fail(fmt.Errorf("expire: %w", err))
		}
	})
	for k := range 20 {
		wg.Go(func() {
			<-start
			stock := int64(1 + (k*7)%(n+5))
			_, err := s.UpdateSale(ctx, sale.ID, surge.SalePatch{Stock: &stock}, surge.At(t0.Add(time.Duration(k)*time.Millisecond)))
			if err != nil && !surge.HasCode(err, surge.CodeStockBelowSold) {
				fail(fmt.Errorf("stock to %d: %w", stock, err))
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	check := func(when string) {
		t.Helper()
		cur, err := s.Sale(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		var held int64
		if err := s.Orders(ctx, sale.ID, func(o surge.Order) error {
			if o.Status.Live() {
				held += o.Quantity
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		rem, err := s.Remaining(ctx, sale.ID)
		if err != nil || rem != cur.Stock-held || rem < 0 {
			t.Errorf("%s: stock %d, the orders hold %d, remaining %d (%v)", when, cur.Stock, held, rem, err)
		}
	}
	check("after the race")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	check("after a reopen")
}
