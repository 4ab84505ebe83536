package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// testArchive: every store implements surge.Archiver; it archives only
// ended sales without reserved orders, durably; an archived sale leaves
// Sales and its live state, and its orders stay readable.
func testArchive(t *testing.T, h Harness) {
	e := newEnv(t, h)
	if _, ok := e.s.(surge.Archiver); !ok {
		// Not a pass: a backend without archiving holds every past sale
		// in memory forever (issue 9, item 12).
		t.Fatalf("%T does not implement surge.Archiver", e.s)
	}
	archiver := func() surge.Archiver { return e.s.(surge.Archiver) }
	archive := func(id string, now time.Time) (surge.ArchivedSale, error) {
		return archiver().ArchiveSale(e.ctx, id, now)
	}
	wantCode := func(what string, err error, code surge.Code) {
		t.Helper()
		if surge.ErrorCode(err) != code {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}
	a := newSale(t, "a", 5, 1, endsAt(at(time.Hour)))
	b := newSale(t, "b", 5, 1, createdAt(at(time.Second)))
	c := newSale(t, "c", 5, 1, endsAt(at(time.Hour)), createdAt(at(2*time.Second)))
	e.createSale(a, b, c)
	paid := e.reserveOne("a", at(0), buy("u1", 1))
	e.pay(paid.ID, at(time.Second))
	held := e.reserveOne("a", at(0), buy("u2", 1))

	_, err := archive("a", at(30*time.Minute))
	wantCode("archive before the end", err, surge.CodeNotArchivable)
	_, err = archive("a", at(2*time.Hour))
	wantCode("archive with a reserved order", err, surge.CodeNotArchivable)
	_, err = archive("b", at(1000*time.Hour))
	wantCode("archive a sale without an end", err, surge.CodeNotArchivable)
	_, err = archive("nope", at(2*time.Hour))
	wantCode("archive an unknown sale", err, surge.CodeSaleNotFound)

	e.wantExpire(at(2*time.Hour), held)
	got, err := archive("a", at(2*time.Hour))
	if err != nil {
		t.Fatalf("archive an ended, settled sale: %v", err)
	}
	if got.ID != "a" || got.Stock != 5 || got.Remaining != 4 || !got.ArchivedAt.Equal(at(2*time.Hour)) {
		t.Errorf("archived %+v, want sale a with 4 left at %v", got, at(2*time.Hour))
	}
	_, err = archive("a", at(3*time.Hour))
	wantCode("archive twice", err, surge.CodeSaleNotFound)

	check := func(when string) {
		t.Helper()
		if ids := saleIDs(e.sales()); !slices.Equal(ids, []string{"b", "c"}) {
			t.Errorf("%s: Sales = %v, want [b c]", when, ids)
		}
		list, err := archiver().ArchivedSales(e.ctx)
		if err != nil {
			t.Fatalf("%s: ArchivedSales: %v", when, err)
		}
		if len(list) != 1 || list[0].ID != "a" || list[0].Remaining != 4 || !list[0].ArchivedAt.Equal(at(2*time.Hour)) ||
			!list[0].EndsAt.Equal(a.EndsAt) || list[0].Name != a.Name {
			t.Errorf("%s: ArchivedSales = %+v, want sale a", when, list)
		}
		if o := e.order(paid.ID); o.Status != surge.OrderPaid {
			t.Errorf("%s: the paid order reads %+v", when, o)
		}
		if os := e.orders("a"); len(os) != 2 || os[0].ID != paid.ID || os[1].ID != held.ID {
			t.Errorf("%s: Orders(a) = %+v, want the paid and the expired order", when, os)
		}
		if _, err := e.s.Cancel(e.ctx, paid.ID, at(3*time.Hour)); !surge.HasCode(err, surge.CodeNotCancellable) {
			t.Errorf("%s: cancel an archived sale's order: %v, want not_cancellable", when, err)
		}
		if _, _, err := e.s.Reserve(e.ctx, "a", []surge.Purchase{buy("u3", 1)}, surge.At(at(30*time.Minute))); !surge.HasCode(err, surge.CodeSaleNotFound) {
			t.Errorf("%s: reserve in an archived sale: %v, want sale_not_found", when, err)
		}
		if _, err := e.s.Remaining(e.ctx, "a"); !surge.HasCode(err, surge.CodeSaleNotFound) {
			t.Errorf("%s: Remaining of an archived sale: %v, want sale_not_found", when, err)
		}
	}
	check("after archiving")
	e.reopen()
	check("after a restart")
	// The other sales are untouched.
	e.reserveOne("c", at(0), buy("u1", 1))
	e.wantRemaining("c", 4)
}

func saleIDs(sales []surge.Sale) []string {
	ids := make([]string, len(sales))
	for i, s := range sales {
		ids[i] = s.ID
	}
	return ids
}

// testArchiveUnstarted: a sale yet to start can be archived, which is how
// an operator calls it off (a start set years ahead by mistake): its
// start is fixed and no end may come before it, so it could otherwise
// neither end nor leave service until it started. Once started and not
// ended it is not archivable.
func testArchiveUnstarted(t *testing.T, h Harness) {
	e := newEnv(t, h)
	archiver := func() surge.Archiver { return e.s.(surge.Archiver) }
	typo := time.Date(2062, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	e.createSale(
		newSale(t, "typo", 5, 1, startsAt(typo), endsAt(typo.Add(time.Hour))),
		newSale(t, "last", 5, 1, startsAt(last), createdAt(at(time.Second))),
		newSale(t, "soon", 5, 1, startsAt(at(time.Hour)), createdAt(at(2*time.Second))),
	)
	for _, id := range []string{"typo", "last"} {
		got, err := archiver().ArchiveSale(e.ctx, id, at(time.Minute))
		if err != nil {
			t.Fatalf("archive %s, yet to start: %v", id, err)
		}
		if got.ID != id || got.Remaining != 5 || !got.ArchivedAt.Equal(at(time.Minute)) {
			t.Errorf("archived %+v, want sale %s with 5 left at %v", got, id, at(time.Minute))
		}
	}
	// Started, no end: in progress.
	if _, err := archiver().ArchiveSale(e.ctx, "soon", at(2*time.Hour)); surge.ErrorCode(err) != surge.CodeNotArchivable {
		t.Fatalf("archive a started sale without an end: %v, want not_archivable", err)
	}
	check := func(when string) {
		t.Helper()
		if ids := saleIDs(e.sales()); !slices.Equal(ids, []string{"soon"}) {
			t.Errorf("%s: Sales = %v, want [soon]", when, ids)
		}
		list, err := archiver().ArchivedSales(e.ctx)
		if err != nil {
			t.Fatalf("%s: ArchivedSales: %v", when, err)
		}
		ids := make([]string, len(list))
		for i, a := range list {
			ids[i] = a.ID
		}
		if !slices.Equal(ids, []string{"typo", "last"}) || !list[0].StartsAt.Equal(typo) || list[0].Remaining != 5 ||
			!list[1].StartsAt.Equal(last) || list[1].Remaining != 5 {
			t.Errorf("%s: ArchivedSales = %+v, want typo and last, 5 left each", when, list)
		}
		if _, _, err := e.s.Reserve(e.ctx, "typo", []surge.Purchase{buy("u1", 1)}, surge.At(typo.Add(time.Minute))); !surge.HasCode(err, surge.CodeSaleNotFound) {
			t.Errorf("%s: reserve in the archived sale once its start came: %v, want sale_not_found", when, err)
		}
	}
	check("after archiving")
	e.reopen()
	check("after a restart")
	e.reserveOne("soon", at(2*time.Hour), buy("u1", 1))
	e.wantRemaining("soon", 4)
}
