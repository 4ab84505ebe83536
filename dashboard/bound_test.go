package dashboard

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestBoundKeepsSalesInPlay: over the bound, the page kept sales with
// units left in id order whatever their status, so ended sales that did
// not sell out (kept until archived) hid a sale about to start or one on
// sale but quiet for a moment. Over the real engine and store, the sales
// still in play (live, paused, upcoming) are kept before ended ones.
func TestBoundKeepsSalesInPlay(t *testing.T) {
	ctx := context.Background()
	eng, reg := engineWithFigures(t)

	create := func(id string, startsAt *time.Time) {
		t.Helper()
		name, stock := id, int64(10)
		if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: startsAt}); err != nil {
			t.Fatal(err)
		}
	}
	later, earlier := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)
	for _, id := range []string{"a-old", "b-old", "c-old"} {
		// Started a minute ago: ended at once, the end would fall in its
		// start's millisecond, which a sale refuses.
		create(id, &earlier)
		now := time.Now()
		if _, err := eng.UpdateSale(ctx, id, surge.SalePatch{EndsAt: &now}); err != nil {
			t.Fatal(err)
		}
	}
	create("x-live", nil)
	create("y-paused", nil)
	yes := true
	if _, err := eng.UpdateSale(ctx, "y-paused", surge.SalePatch{Paused: &yes}); err != nil {
		t.Fatal(err)
	}
	create("z-drop", &later)

	f := &feed{g: reg, window: 5 * time.Second, interval: time.Second, maxSales: 3}
	t0 := time.Now()
	for i, at := range []time.Time{t0, t0.Add(time.Second)} { // the first snapshot knows no activity yet
		s, err := f.snapshot(at)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, sl := range s.Sales {
			ids = append(ids, sl.ID)
		}
		if want := []string{"x-live", "y-paused", "z-drop"}; !slices.Equal(ids, want) || s.HiddenSales != 3 {
			t.Errorf("snapshot %d: the page shows %v (%d hidden), want %v: the sales in play, the ended ones left out", i, ids, s.HiddenSales, want)
		}
	}
}
