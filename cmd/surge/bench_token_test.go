package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/surgehq/surge/api"
)

// TestBenchChecksTheTokenBeforeTheCrowd: surge bench --sale ID, which
// verifies against the admin export, with an admin token the server
// refuses, fired its whole crowd at the sale (buying its units) and only
// then learned from the export's 401 that it could not verify: the run's
// figures were lost with it and the units sold for nothing. The token must
// be checked before a purchase is sent.
func TestBenchChecksTheTokenBeforeTheCrowd(t *testing.T) {
	ctx, admin := cliServer(t, "--insecure-user-header")
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(50))}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(ctx, "bench", "--sale", "drop", "--admin-token", "wrong-token-wrong-token",
		"--users", "20", "--connections", "4", "--retry-share", "0")
	s, err := admin.Sale(ctx, "drop")
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(stderr, "the server refused the admin token") || s.Remaining != 50 {
		t.Errorf("bench --sale with a wrong admin token: exit %d, %d of 50 units sold, stdout %q, stderr %q; want 1, the token refused and no purchase sent",
			code, 50-s.Remaining, stdout, stderr)
	}
}

// TestBenchKeepsTheRunWhenVerificationCannotRead: a run whose export
// could not be read afterwards (the server restarting, a proxy's 503) was
// reported as that error alone: the figures of the whole run, measured
// and sent, were dropped, the summary unprinted and --json unwritten. They
// must be kept, the verdict NOT VERIFIED, and the command still fail.
func TestBenchKeepsTheRunWhenVerificationCannotRead(t *testing.T) {
	ctx, admin := cliServer(t, "--insecure-user-header")
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(50))}); err != nil {
		t.Fatal(err)
	}
	var exports atomic.Int64
	// The export is served once (before the crowd), then refused with a
	// wait past the client's bounds.
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		if strings.HasSuffix(r.URL.Path, "/orders") && exports.Add(1) > 1 {
			unavailable503("3600")(w)
			return
		}
		server.ServeHTTP(w, r)
	})
	jsonPath := filepath.Join(t.TempDir(), "run.json")
	code, stdout, stderr := runCLI(ctx, "bench", "--server", proxy.URL, "--sale", "drop", "--users", "20",
		"--connections", "4", "--retry-share", "0", "--json", jsonPath)
	raw, rerr := os.ReadFile(jsonPath)
	if code != 1 || !strings.Contains(stdout, "VERDICT: NOT VERIFIED") || !strings.Contains(stderr, "verify:") ||
		!strings.Contains(stderr, "unavailable") || rerr != nil || !strings.Contains(string(raw), `"sent"`) {
		t.Errorf("bench whose export could not be read after the run: exit %d, stdout %q, stderr %q, --json %v; want 1, the run's summary NOT VERIFIED, its JSON and the export's refusal",
			code, stdout, stderr, rerr)
	}
}
