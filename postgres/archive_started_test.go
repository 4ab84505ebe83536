package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestArchiveRefusesASaleThatStartedMeanwhile: an archive's now is read
// before it waits for the sale's row lock (behind the sale's inserts and
// settlements), so a sale yet to start at that now may have started and
// sold by the time the archive holds the lock. It was archived all the
// same, a live sale with a paid order (no reserved one left for the count
// to find) taken out of service; it is refused as not_archivable.
func TestArchiveRefusesASaleThatStartedMeanwhile(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	sl := sale(t, db) // started an hour ago
	o := order("o1", sl, time.Now().Add(time.Hour))
	if _, _, err := db.InsertOrders(ctx, sl.ID, 1, []surge.Order{o}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, o.ID, surge.OrderPaid, time.Now()); err != nil {
		t.Fatal(err)
	}
	a, err := db.ArchiveSale(ctx, sl.ID, sl.StartsAt.Add(-time.Millisecond))
	if !surge.HasCode(err, surge.CodeNotArchivable) {
		t.Fatalf("archive at a now before the start of a sale that since sold: %+v, %v; want not_archivable", a, err)
	}
}
