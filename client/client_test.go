package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/client"
	surgehttp "github.com/surgehq/surge/http"
)

// Sales follows the listing's cursors, so it sees every sale however many
// pages they take (issue 9, item 12: the listing is paginated).
func TestSalesFollowsCursors(t *testing.T) {
	base := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC)
	var tick atomic.Int64 // the engine's clock, read by its goroutines
	c, eng := serve(t, func() time.Time { return base.Add(time.Duration(tick.Load()) * time.Millisecond) })
	ctx := context.Background()
	const n = 2*surgehttp.DefaultSalesPage + 5
	for i := range n {
		id, name, stock := fmt.Sprintf("s%03d", i), "Sale", int64(1)
		ends := base.Add(time.Hour)
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, EndsAt: &ends}); err != nil {
			t.Fatal(err)
		}
		tick.Add(1)
	}
	sales, err := c.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sales) != n {
		t.Fatalf("Sales returned %d sales, want %d", len(sales), n)
	}
	for i, s := range sales {
		if want := fmt.Sprintf("s%03d", i); s.ID != want {
			t.Fatalf("sale %d is %s, want %s", i, s.ID, want)
		}
	}
	page, next, err := c.SalesPage(ctx, false, "", 7)
	if err != nil || len(page) != 7 || next == "" {
		t.Fatalf("SalesPage(limit 7) = %d sales, next %q, %v", len(page), next, err)
	}

	// Archiving: before the end 409, after it 200 and again 200.
	var apiErr *client.APIError
	if _, err := c.ArchiveSale(ctx, "s001"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != "not_archivable" {
		t.Fatalf("archive before the end: %v, want 409 not_archivable", err)
	}
	tick.Add(int64(2 * time.Hour / time.Millisecond))
	for range 2 {
		s, err := c.ArchiveSale(ctx, "s001")
		if err != nil || s.ID != "s001" || !s.Archived || s.Status != "ended" {
			t.Fatalf("archive: %+v %v", s, err)
		}
	}
	archived, err := c.ArchivedSales(ctx)
	if err != nil || len(archived) != 1 || archived[0].ID != "s001" || !archived[0].Archived {
		t.Fatalf("ArchivedSales = %+v %v", archived, err)
	}
	if sales, err := c.Sales(ctx); err != nil || len(sales) != n-1 {
		t.Fatalf("Sales after archiving: %d sales (%v), want %d", len(sales), err, n-1)
	}
}
