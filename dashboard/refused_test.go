package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/surgehq/surge"
)

// TestPageSaysWhyItsFeedIsRefused: a feed refused for good (EventSource
// sees only that it closed) made the page say "reload to sign in again"
// whatever the reason; an operator whose dashboard was one too many, or
// whose server was shutting down, was sent to a sign-in that changes
// nothing. The page must name the reason the server gave.
func TestPageSaysWhyItsFeedIsRefused(t *testing.T) {
	eng, reg := engineWithFigures(t)
	d := New(Config{Gatherer: reg, AdminToken: testToken, MaxStreams: 1})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })
	const sale = "drop"
	id, name, stock := sale, "Drop", int64(10)
	if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}

	// Another dashboard holds the only stream.
	hctx, release := context.WithCancel(context.Background())
	defer release()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, srv.URL+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the other dashboard's feed: %d", resp.StatusCode)
	}

	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), testToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#status.down`)),
	); err != nil {
		t.Fatalf("sign in with every stream taken: %v", err)
	}
	// says waits for the status to contain want.
	says := func(want string, within time.Duration) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = pageText(t, ctx, `#status-text`); strings.Contains(got, want) {
				return
			}
		}
		t.Errorf("the page says %q, want it to say %q", got, want)
	}
	says("too many dashboards", 5*time.Second)

	release() // the other dashboard closes: the page gets the stream
	says("live", 15*time.Second)

	d.Close() // the server shuts down: the stream ends and is refused 503
	says("shutting down", 10*time.Second)

	d.SetAdminToken("rotated-after-a-leak") // the session is void: 401
	says("reload to sign in", 10*time.Second)
}
