package dashboard

import (
	"context"
	"net/http/httptest"
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
		if want := []string{"x-live", "y-paused", "z-drop"}; !slices.Equal(ids, want) || s.HiddenSales != 3 || s.HiddenInPlay != 0 {
			t.Errorf("snapshot %d: the page shows %v (%d hidden, %d in play), want %v: the sales in play, the ended ones left out", i, ids, s.HiddenSales, s.HiddenInPlay, want)
		}
	}
	// Fewer places than sales in play: the note must count the one left
	// out, not call every hidden sale idle.
	f.maxSales = 2
	s, err := f.snapshot(t0.Add(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if s.HiddenSales != 4 || s.HiddenInPlay != 1 {
		t.Errorf("2 places for 3 sales in play: %d hidden, %d of them in play; want 4 and 1 (z-drop)", s.HiddenSales, s.HiddenInPlay)
	}
}

// TestPageSaysHiddenSalesInPlay: over the bound, the page said "N idle
// sales not shown" whatever the hidden sales were, so with more sales on
// sale than it shows, an operator read that nothing happened in the ones
// left out. In a real browser, the note must say how many of the hidden
// sales are still in play.
func TestPageSaysHiddenSalesInPlay(t *testing.T) {
	eng, reg := engineWithFigures(t)
	d := New(Config{Gatherer: reg, AdminToken: testToken})
	d.feed.maxSales = 2 // set before serving: no feed reads it yet
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })
	for _, id := range []string{"a-drop", "b-drop", "c-drop", "d-drop"} {
		name, stock := id, int64(10)
		if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := browser(t)
	signIn(t, ctx, srv.URL, "a-drop")
	const want = "2 sales not shown (2 of them still in play)"
	got := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = pageInnerText(t, ctx, `#hidden-sales`); got == want {
			return
		}
	}
	t.Errorf("with 4 sales on sale and 2 shown, the page says %q, want %q", got, want)
}
