package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/surgehq/surge/dashboard"
)

// screenshot is where TestDashboardInBrowser saves a screenshot of the
// page; docs/dashboard.png is made with
// go test ./cmd/surge -run TestDashboardInBrowser -args -dashboard-screenshot=$PWD/docs/dashboard.png
var screenshot = flag.String("dashboard-screenshot", "", "save a PNG of the dashboard during TestDashboardInBrowser to this path")

// chromium returns the path of Debian's Chromium. Missing, the test
// fails under CI (scripts/services.sh installs it) and is skipped, with
// the reason, elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (apt-get install -y chromium, or run scripts/services.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// TestDashboardInBrowser drives headless Chromium against a real embedded
// server during a spike: the operator signs in with the admin token, and
// the page shows the sale's remaining units falling to 0 and the outcome
// counts. With -dashboard-screenshot, it saves a screenshot of the page.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	exe := chromium(t)
	const token = "dashboard-browser-test-token"
	srv := startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--insecure-user-header", "--rate-limit-buyer", "0", "--log-level", "error")
	const stock, buyers = 1000, 3000
	sale := createSale(t, srv.base, token, stock, 1)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first Run starts the browser, which lives as long as the
	// context of that call: no timeout on it, only on later steps.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	card := fmt.Sprintf(`section.sale[data-sale=%q]`, sale)
	// Sign in as a browser does: the form posts the token, the server
	// answers a session cookie and sends the browser back to the page.
	if err := chromedp.Do(tctx,
		chromedp.Navigate(srv.base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(card+` .remaining`)),
	); err != nil {
		t.Fatalf("sign in and see the sale: %v", err)
	}
	// textContent of a selector, "" while it matches nothing.
	text := func(sel string) string {
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	if first := text(card + ` .remaining`); first != "1,000" {
		t.Errorf("remaining before the spike: %q, want 1,000", first)
	}

	// The spike: three buyers per unit, one unit each, over a few seconds
	// so that the page follows it second by second.
	spikeCtx, stopSpike := context.WithCancel(context.Background())
	spikeDone := make(chan struct{})
	go func() {
		defer close(spikeDone)
		spike(spikeCtx, t, srv.base, sale, buyers, 16, 40*time.Millisecond)
	}()
	defer func() { stopSpike(); <-spikeDone }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		remaining := text(card + ` .remaining`)
		reserved := text(card + ` tr[data-outcome="reserved"] .total`)
		soldOut := text(card + ` tr[data-outcome="sold_out"] .total`)
		if remaining == "0" && reserved == "1,000" && count(soldOut) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page shows remaining %q, reserved %q, sold_out %q; want 0, 1,000 and some", remaining, reserved, soldOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if path := *screenshot; path != "" {
		time.Sleep(1500 * time.Millisecond) // a few sold-out seconds on the curve
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}
}

func count(s string) int {
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		return -1
	}
	return n
}

// spike sends one purchase for each of buyers users from workers
// goroutines, each pausing pause between its purchases, until ctx ends.
func spike(ctx context.Context, t *testing.T, base, sale string, buyers, workers int, pause time.Duration) {
	hc := &http.Client{Timeout: 10 * time.Second}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for u := range next {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/"+sale+"/purchases", nil)
				req.Header.Set("X-User-ID", fmt.Sprintf("buyer-%d", u))
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("purchase: %v", err)
					}
					continue
				}
				resp.Body.Close()
				time.Sleep(pause)
			}
		})
	}
feed:
	for u := range buyers {
		select {
		case next <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// TestDashboardClusterFeed: in cluster mode the feed carries the breakers
// of Redis and PostgreSQL and whether this node leads (a lone node takes
// the lease), from the metrics the cluster store registers.
func TestDashboardClusterFeed(t *testing.T) {
	const token = "dashboard-cluster-test-token"
	srv := startServe(t, append(clusterArgs(t), "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0",
		"--admin-token", token, "--log-level", "error")...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.base+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var last dashboard.Snapshot
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		last = dashboard.Snapshot{}
		if err := json.Unmarshal([]byte(data), &last); err != nil {
			t.Fatalf("snapshot %q: %v", data, err)
		}
		states := map[string]string{}
		for _, b := range last.Breakers {
			states[b.Dependency] = b.State
		}
		if last.Leader != nil && *last.Leader && states["redis"] == "closed" && states["postgres"] == "closed" {
			return
		}
	}
	t.Fatalf("no snapshot showed this node leading with closed breakers; the last: leader %v, breakers %+v (%v)",
		last.Leader, last.Breakers, sc.Err())
}
