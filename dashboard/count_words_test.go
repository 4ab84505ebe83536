package dashboard

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestHiddenSalesNoteInWords: the note under the sales said "1 sales not
// shown (1 of them still in play)" and "1 idle sales not shown" when one
// sale was on another page. In a real browser over the real engine, one
// sale past the page's 48 is "1 sale not shown", and more keep the
// plural.
func TestHiddenSalesNoteInWords(t *testing.T) {
	for _, c := range []struct {
		name   string
		onSale int
		ended  bool // one more sale, ended: the last ranked
		want   string
	}{
		{"one in play", 49, false, "1 sale not shown (still in play)"},
		{"one idle", 48, true, "1 idle sale not shown"},
		{"two in play", 50, false, "2 sales not shown (2 of them still in play)"},
		{"two, one in play", 49, true, "2 sales not shown (1 of them still in play)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng, reg := engineWithFigures(t)
			onSale(t, eng, c.onSale)
			if c.ended {
				// Started a minute ago, so that its end now comes after its start.
				id, name, stock, start := "z-ended", "z-ended", int64(10), time.Now().Add(-time.Minute)
				if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}); err != nil {
					t.Fatal(err)
				}
				if _, err := eng.UpdateSale(context.Background(), id, surge.SalePatch{EndNow: true}); err != nil {
					t.Fatal(err)
				}
			}
			d := New(Config{Gatherer: reg, AdminToken: testToken})
			srv := httptest.NewServer(d)
			t.Cleanup(func() { d.Close(); srv.Close() })
			ctx := browser(t)
			signIn(t, ctx, srv.URL, "s-00")
			if got := pageInnerText(t, ctx, `#hidden-sales`); got != c.want {
				t.Errorf("the note under the sales says %q; want %q", got, c.want)
			}
		})
	}
}
