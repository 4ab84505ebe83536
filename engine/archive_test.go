package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// countingStore counts every call that reaches the store.
type countingStore struct {
	surge.Store
	calls atomic.Int64
}

func (c *countingStore) Sales(ctx context.Context) ([]surge.Sale, error) {
	c.calls.Add(1)
	return c.Store.Sales(ctx)
}

func (c *countingStore) Remaining(ctx context.Context, id string) (int64, error) {
	c.calls.Add(1)
	return c.Store.Remaining(ctx, id)
}

func (c *countingStore) Order(ctx context.Context, id string) (surge.Order, error) {
	c.calls.Add(1)
	return c.Store.Order(ctx, id)
}

func (c *countingStore) ArchiveSale(ctx context.Context, id string, now time.Time) (surge.ArchivedSale, error) {
	c.calls.Add(1)
	return c.Store.(surge.Archiver).ArchiveSale(ctx, id, now)
}

func (c *countingStore) ArchivedSales(ctx context.Context) ([]surge.ArchivedSale, error) {
	c.calls.Add(1)
	return c.Store.(surge.Archiver).ArchivedSales(ctx)
}

// Listing pages through the sales by cursor, from memory: a flood of list
// and read requests makes no store call (issue 9, item 12).
func TestSalesPagesFromMemory(t *testing.T) {
	cs := &countingStore{Store: openStore(t, t.TempDir())}
	clk := fixedClock()
	e := openEngine(t, cs, testConfig(clk))
	const n = 25
	for i := range n {
		mustCreate(t, e, input(fmt.Sprintf("s%02d", i), 3, 1))
		clk.Advance(time.Millisecond)
	}
	before := cs.calls.Load()
	for _, limit := range []int{1, 7, 25, 100} {
		var got []string
		var after *SaleCursor
		for pages := 0; ; pages++ {
			page, next := e.SalesPage(false, after, limit)
			for _, s := range page {
				got = append(got, s.ID)
			}
			if next == nil {
				break
			}
			if pages > n {
				t.Fatalf("limit %d: more pages than sales", limit)
			}
			after = next
		}
		if len(got) != n {
			t.Fatalf("limit %d: listed %d sales, want %d: %v", limit, len(got), n, got)
		}
		for i, id := range got {
			if want := fmt.Sprintf("s%02d", i); id != want {
				t.Fatalf("limit %d: sale %d is %s, want %s", limit, i, id, want)
			}
		}
	}
	for range 10_000 {
		e.SalesPage(false, nil, 100)
		if _, err := e.Sale("s03"); err != nil {
			t.Fatal(err)
		}
	}
	if calls := cs.calls.Load() - before; calls != 0 {
		t.Errorf("listing made %d store calls, want 0", calls)
	}
}

// Archive: only an ended sale without reserved orders; it then leaves the
// pipeline and the default listing, stays readable with its orders, and
// stays archived after a restart, loaded without its ledger.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	clk := fixedClock()
	st := openStore(t, dir)
	e := openEngine(t, st, testConfig(clk))
	end := clk.Now().Add(time.Hour)
	in := input("old", 5, 1)
	in.EndsAt = &end
	mustCreate(t, e, in)
	mustCreate(t, e, input("live", 5, 1))
	ctx := context.Background()
	paid := mustReserve(t, e, "old", surge.Purchase{UserID: "a", Quantity: 1})
	if _, err := e.Pay(ctx, paid.ID); err != nil {
		t.Fatal(err)
	}
	held := mustReserve(t, e, "old", surge.Purchase{UserID: "b", Quantity: 1})

	code := func(err error) surge.Code { return surge.ErrorCode(err) }
	if _, err := e.Archive(ctx, "old"); code(err) != surge.CodeNotArchivable {
		t.Fatalf("archive a live sale: %v, want not_archivable", err)
	}
	clk.Advance(2 * time.Hour)
	if _, err := e.Archive(ctx, "old"); code(err) != surge.CodeNotArchivable {
		t.Fatalf("archive with a reserved order: %v, want not_archivable", err)
	}
	e.ExpireNow() // the hold ran out
	if o, err := e.Order(ctx, held.ID); err != nil || o.Status != surge.OrderExpired {
		t.Fatalf("held order: %+v, %v; want expired", o, err)
	}
	if _, err := e.Archive(ctx, "live"); code(err) != surge.CodeNotArchivable {
		t.Fatalf("archive a sale without an end: %v, want not_archivable", err)
	}
	if _, err := e.Archive(ctx, "nope"); code(err) != surge.CodeSaleNotFound {
		t.Fatalf("archive an unknown sale: %v", err)
	}
	got, err := e.Archive(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Archived || got.Remaining != 4 || got.Status != surge.SaleEnded {
		t.Errorf("archived state %+v", got)
	}
	if again, err := e.Archive(ctx, "old"); err != nil || again != got {
		t.Errorf("archive again: %+v, %v; want the same answer", again, err)
	}
	check := func(e *Engine, when string) {
		t.Helper()
		if page, _ := e.SalesPage(false, nil, 100); len(page) != 1 || page[0].ID != "live" {
			t.Errorf("%s: listed %+v, want only live", when, page)
		}
		if page, _ := e.SalesPage(true, nil, 100); len(page) != 1 || page[0] != got {
			t.Errorf("%s: archived list %+v, want %+v", when, page, got)
		}
		if s, err := e.Sale("old"); err != nil || s != got {
			t.Errorf("%s: Sale(old) = %+v, %v", when, s, err)
		}
		n := 0
		if err := e.Orders(ctx, "old", func(surge.Order) error { n++; return nil }); err != nil || n != 2 {
			t.Errorf("%s: export: %d orders, %v; want 2", when, n, err)
		}
		if out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "old", Purchase: surge.Purchase{UserID: "c", Quantity: 1}}); err != surge.ErrSaleNotFound {
			t.Errorf("%s: purchase in an archived sale: %+v, %v; want sale_not_found", when, out, err)
		}
		if e.lookup("old") != nil {
			t.Errorf("%s: the archived sale still has a pipeline", when)
		}
	}
	check(e, "archived")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openEngine(t, openStore(t, dir), testConfig(clk))
	check(e2, "after a restart")
}
