package main

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestSaleEndLeavesNowToTheServer: `surge sale end` sent ends_at as this
// machine's clock read it, so an operator whose clock ran ahead of the
// server's (a laptop, a bastion without NTP) left the sale live until the
// server's clock reached it, minutes or hours. It sends "now", which the
// server reads on its own clock.
func TestSaleEndLeavesNowToTheServer(t *testing.T) {
	ctx, c := cliServer(t)
	if _, err := c.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(10)), StartsAt: new(api.FormatTime(time.Now().Add(-time.Minute)))}); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		bodies []string
	)
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		if r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		server.ServeHTTP(w, r)
	})
	t.Setenv("SURGE_SERVER", proxy.URL)
	code, stdout, stderr := runCLI(ctx, "sale", "end", "drop")
	if code != 0 {
		t.Fatalf("sale end: %d, stderr %q", code, stderr)
	}
	var s api.Sale
	decodeJSON(t, stdout, &s)
	mu.Lock()
	defer mu.Unlock()
	if want := `{"ends_at":"now"}`; len(bodies) != 1 || bodies[0] != want || s.Status != "ended" {
		t.Errorf("sale end sent %q and printed status %q; want one PATCH %s (the server's clock) and the sale ended", bodies, s.Status, want)
	}
}
