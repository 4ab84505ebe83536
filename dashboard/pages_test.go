package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
)

// onSale creates n sales on sale, s-00, s-01, …, in the real engine.
func onSale(t *testing.T, eng *engine.Engine, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("s-%02d", i)
		name, stock := id, int64(10)
		if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// feedAt opens the feed at path (with its query) and returns the status,
// and the first snapshot of a 200.
func feedAt(t *testing.T, base, path string) (int, Snapshot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, Snapshot{}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var s Snapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				t.Fatalf("snapshot %q: %v", data, err)
			}
			return resp.StatusCode, s
		}
	}
	t.Fatalf("%s: no snapshot: %v", path, sc.Err())
	return 0, Snapshot{}
}

// TestFeedPagesReachEverySale: past its 48 sales, the feed sent the
// first 48 and nothing could ask it for the rest, so an operator with 60
// sales on sale never saw 12 of them, sales in play. Over the real
// engine, the feed's pages must show every sale once, 48 at most a page.
func TestFeedPagesReachEverySale(t *testing.T) {
	eng, reg := engineWithFigures(t)
	ids := onSale(t, eng, 60)
	_, srv := newTestServer(t, Config{Gatherer: reg})

	seen := map[string]int{}
	for page := 1; page <= 2; page++ { // 60 sales, 48 a page
		status, s := feedAt(t, srv.URL, fmt.Sprintf("/dashboard/events?page=%d", page))
		if status != http.StatusOK {
			t.Fatalf("page %d: %d", page, status)
		}
		if len(s.Sales) > defaultMaxSales {
			t.Errorf("page %d shows %d sales, over %d", page, len(s.Sales), defaultMaxSales)
		}
		for _, sl := range s.Sales {
			seen[sl.ID]++
		}
	}
	var missing, twice []string
	for _, id := range ids {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("with 60 sales on sale, the feed's pages never show %d of them: %v", len(missing), missing)
	}
	if len(twice) > 0 {
		t.Errorf("sales shown on more than one page: %v", twice)
	}
}

// TestFeedPageRefusesBadInput: a page the feed cannot read is refused,
// not taken for the first one: an operator who asked for page 2 must not
// read page 1's sales as the rest.
func TestFeedPageRefusesBadInput(t *testing.T) {
	_, srv := newTestServer(t, Config{})
	for _, q := range []string{"?page=0", "?page=-1", "?page=two", "?page=", "?page=1&page=2", "?pgae=2", "?page=%zz"} {
		if status, _ := feedAt(t, srv.URL, "/dashboard/events"+q); status != http.StatusBadRequest {
			t.Errorf("/dashboard/events%s: %d, want 400", q, status)
		}
	}
}

// TestOperatorPagesToEverySale: in a real browser, an operator with 60
// sales on sale saw 48 and a note that 12 more, still in play, were not
// shown, with no way to see them. Following the page's own links must
// reach every sale.
func TestOperatorPagesToEverySale(t *testing.T) {
	eng, reg := engineWithFigures(t)
	ids := onSale(t, eng, 60)
	d := New(Config{Gatherer: reg, AdminToken: testToken})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })

	ctx := browser(t)
	signIn(t, ctx, srv.URL, "s-00")
	seen := map[string]bool{}
	for step := 0; ; step++ {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("section.sale")].map(e => e.dataset.sale)`))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range shown {
			seen[id] = true
		}
		// The link an operator follows to the next page, if the page
		// shows one.
		next, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const a = document.querySelector("a[rel=next]"); return a && a.offsetParent !== null ? a.href : ""; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if next == "" || step == 3 {
			break
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(next), chromedp.WaitVisible(chromedp.CSS(`section.sale .remaining`))); err != nil {
			t.Fatalf("follow %s: %v", next, err)
		}
	}
	var missing []string
	for _, id := range ids {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("with 60 sales on sale, the operator can reach %d of them; never %v (the note says %q)",
			len(seen), missing, pageInnerText(t, ctx, `#hidden-sales`))
	}
}

// TestSignInReturnsToThePage: an operator on /dashboard?page=2 (a
// bookmark, or the page reloaded once the session ended) got the sign-in
// form, and signing in sent them to /dashboard: page 1, the sales they
// were watching gone from the screen. docs/observability.md says the
// sign-in redirects "back to the page". In a real browser, a sign-in from
// page 2, after a wrong token too, must land on page 2.
func TestSignInReturnsToThePage(t *testing.T) {
	eng, reg := engineWithFigures(t)
	onSale(t, eng, 60) // two pages of 48
	d := New(Config{Gatherer: reg, AdminToken: testToken})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })

	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/dashboard?page=2"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-the-admin-token"),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`p.error`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), testToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`section.sale .remaining`)),
	); err != nil {
		t.Fatalf("sign in from /dashboard?page=2, a wrong token first: %v", err)
	}
	// The feed's first snapshot says which page the page follows.
	var shows string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if shows = pageText(t, ctx, `#page-of`); shows != "" {
			break
		}
	}
	where, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	if err != nil {
		t.Fatal(err)
	}
	if where != "/dashboard?page=2" || shows != "page 2 of 2" {
		t.Errorf("signed in from /dashboard?page=2, the operator lands on %s, which shows %q; want /dashboard?page=2 showing page 2 of 2", where, shows)
	}
}
