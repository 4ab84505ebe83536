package dashboard

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
)

// TestPageFollowsARestart: the server stops (its streams end at Close,
// as at shutdown) and a new one serves on the same address a few seconds
// later. The page says it is not live meanwhile, and follows the new
// server by itself, the session cookie still good (its key derives from
// the admin token), with figures changed while it was away.
func TestPageFollowsARestart(t *testing.T) {
	eng, reg := engineWithFigures(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) func() {
		d := New(Config{Gatherer: reg, AdminToken: testToken})
		hs := &http.Server{Handler: d}
		hs.RegisterOnShutdown(d.Close)
		go func() { _ = hs.Serve(ln) }()
		return func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(ctx)
		}
	}
	stop := serve(ln)
	t.Cleanup(func() { stop() })
	const sale = "drop"
	id, name, stock := sale, "Drop", int64(10)
	if _, err := eng.CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	signIn(t, ctx, "http://"+addr, sale)
	remaining := fmt.Sprintf(`section.sale[data-sale=%q] .remaining`, sale)
	waitFor := func(sel, want string, within time.Duration) string {
		got := ""
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = pageText(t, ctx, sel); strings.HasPrefix(got, want) {
				return ""
			}
		}
		return got
	}
	if got := waitFor(`#status-text`, "live", 10*time.Second); got != "" {
		t.Fatalf("before the restart the page says %q", got)
	}

	stop()
	if got := waitFor(`#status-text`, "reconnecting", 5*time.Second); got != "" {
		if waitFor(`#status-text`, "stale", 5*time.Second) != "" {
			t.Errorf("with the server gone the page says %q", got)
		}
	}
	if out, err := eng.Purchase(context.Background(), engine.PurchaseRequest{SaleID: sale, Purchase: surge.Purchase{UserID: "alice", Quantity: 1}}); err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %v %v", out.Code, err)
	}
	time.Sleep(3 * time.Second)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	stop = serve(ln2)
	if got := waitFor(remaining, "9", 20*time.Second); got != "" {
		t.Fatalf("20 s after the restart the page shows %q remaining (9 in fact), saying %q", got, pageText(t, ctx, `#status-text`))
	}
	if got := waitFor(`#status-text`, "live", 5*time.Second); got != "" {
		t.Errorf("after the restart the page says %q", got)
	}
}
