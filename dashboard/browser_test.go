package dashboard

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// browser starts Debian's headless Chromium (chromedp), as cmd/surge's
// TestDashboardInBrowser does: missing, the test fails under CI=true
// (scripts/services.sh installs it) and is skipped, saying why, elsewhere.
// The context it returns bounds every later step to a minute.
func browser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("drives a browser")
	}
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		const why = "chromium is not installed (apt-get install -y chromium, or run scripts/services.sh)"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	// The first Run starts the browser, which lives as long as the context
	// of that call: no timeout on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(cancel)
	return tctx
}

// signIn signs in at base's sign-in form, as an operator does, and waits
// for the page to show sale.
func signIn(t *testing.T, ctx context.Context, base, sale string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), testToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`section.sale[data-sale=%q] .remaining`, sale))),
	); err != nil {
		t.Fatalf("sign in and see sale %s: %v", sale, err)
	}
}

// pageText is the textContent of the first match of sel, "" without one.
func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return v
}

// TestPageSaysWhenItsFeedStalls: the feed's connection went half-open (a
// NAT or balancer that forgot it: nothing arrives, nothing closes), and
// the page went on saying "live" over figures frozen at that instant,
// for as long as the operator watched (EventSource errs only on a closed
// connection). The page must say its figures are stale within a few
// seconds, and get fresh ones on a new connection by itself.
func TestPageSaysWhenItsFeedStalls(t *testing.T) {
	eng, reg := engineWithFigures(t)
	d := New(Config{Gatherer: reg, AdminToken: testToken})
	srv := httptest.NewServer(d)
	t.Cleanup(func() { d.Close(); srv.Close() })
	px := servicetest.NewProxy(t, srv.Listener.Addr().String())
	base := "http://" + px.Addr

	const sale = "drop"
	id, name, stock := sale, "Drop", int64(10)
	if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	signIn(t, ctx, base, sale)
	remaining := fmt.Sprintf(`section.sale[data-sale=%q] .remaining`, sale)
	waitText := func(sel, want string, within time.Duration) bool {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if pageText(t, ctx, sel) == want {
				return true
			}
		}
		return false
	}
	if !waitText(`#status-text`, "live", 10*time.Second) || pageText(t, ctx, remaining) != "10" {
		t.Fatalf("before the stall the page says %q with %q remaining, want live with 10", pageText(t, ctx, `#status-text`), pageText(t, ctx, remaining))
	}

	px.Strand() // the feed's connection is half-open from now on; new ones work
	stranded := time.Now()
	for range 3 {
		out, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: sale, Purchase: surge.Purchase{UserID: fmt.Sprint("buyer-", time.Now().UnixNano()), Quantity: 1}})
		if err != nil || out.Code != surge.CodeReserved {
			t.Fatalf("purchase: %v %v", out.Code, err)
		}
	}
	// Stale within a few seconds: the server sends a snapshot a second.
	said := ""
	for time.Since(stranded) < 8*time.Second && said == "" {
		if s := pageText(t, ctx, `#status-text`); s != "live" {
			said = s
		}
		time.Sleep(100 * time.Millisecond)
	}
	if said == "" {
		t.Errorf("8 s after the feed's connection went half-open, the page still says %q, showing %q remaining (7 in fact)",
			pageText(t, ctx, `#status-text`), pageText(t, ctx, remaining))
	} else {
		t.Logf("%v after the stall the page says %q", time.Since(stranded).Round(100*time.Millisecond), said)
	}
	if !waitText(remaining, "7", 20*time.Second) {
		t.Fatalf("20 s after the stall the page shows %q remaining (7 in fact), status %q", pageText(t, ctx, remaining), pageText(t, ctx, `#status-text`))
	}
	if !waitText(`#status-text`, "live", 5*time.Second) {
		t.Errorf("with fresh figures again the page says %q, want live", pageText(t, ctx, `#status-text`))
	}
}

// pageInnerText is the rendered text (innerText: hidden elements left
// out) of the first match of sel, "" without one.
func pageInnerText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return v
}
