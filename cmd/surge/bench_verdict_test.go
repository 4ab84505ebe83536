package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/surgehq/surge/api"
)

// TestBenchFailsARunThatTestedNothing: against a server that refuses every
// purchase with 401 (the bench's buyers are not who the server expects),
// the export is clean because nothing was sold, yet the run proved
// nothing: the verdict is FAIL with the reason, and the exit code is 1.
func TestBenchFailsARunThatTestedNothing(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"name":"n","stock":1000,"remaining":1000,"per_user_limit":1}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /v1/sales/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson") // an empty export: nothing was sold
	})
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"no buyer identity"}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	code, out, errOut := runCLI(context.Background(), "bench",
		"--target", srv.URL, "--admin-token", "adm", "--sale", "drop", "--users", "200", "--retry-share", "0", "--connections", "4")
	if code != 1 {
		t.Errorf("bench exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"VERDICT: FAIL — requests accepted: 200 of 200 answers (100.0%) were 400/401/403, over 1%: 401 × 200",
		"✗ reservations made", "no purchase reserved although 1,000 of 1,000 units were left; the answers: unauthorized × 200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchRefusesRateAndStockOutOfRange: a negative or not-a-number
// --rate, and a negative --stock, are usage errors (exit 2) naming the
// flag. They were taken for their defaults: --rate -500 ran a closed loop
// as fast as the server answered, --stock -5 bought from the existing sale
// instead of creating one. The context is done, so a command that got past
// its checks fails at once with another exit code.
func TestBenchRefusesRateAndStockOutOfRange(t *testing.T) {
	base := []string{"--server", "http://127.0.0.1:9", "--admin-token", "adm", "--sale", "drop", "--users", "10"}
	for _, tc := range []struct{ flag, value string }{
		{"--rate", "-500"}, {"--rate", "NaN"}, {"--rate", "-Inf"}, {"--rate", "+Inf"}, {"--stock", "-5"},
	} {
		args := append([]string{"bench"}, base...)
		code, _, errOut := runCLI(cancelled(), append(args, tc.flag, tc.value)...)
		if code != 2 || !strings.Contains(errOut, tc.flag) {
			t.Errorf("bench %s %s: exit %d, stderr %q; want 2 and an error naming %s", tc.flag, tc.value, code, errOut, tc.flag)
		}
	}
}

// TestBenchRefusesBadValuesBeforeSending: values of surge bench's flags
// that bench itself refuses (--users 0, --retry-share 2, --connections 0,
// a negative --timeout, --per-user-limit over --stock, a sale id no sale
// can have…) exited 1, as a failed run does, where the README gives bad
// flags exit 2; with --sale the admin export was read from the server
// first. Each is a command line refused: exit 2, one line, and not one
// request sent (a proxy before the real server counts them).
func TestBenchRefusesBadValuesBeforeSending(t *testing.T) {
	ctx, admin := cliServer(t, "--insecure-user-header")
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("drop"), Name: new("Drop"), Stock: new(int64(50))}); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	proxy := proxyServer(t, func(w http.ResponseWriter, r *http.Request, server http.Handler) {
		sent.Add(1)
		server.ServeHTTP(w, r)
	})
	for _, args := range [][]string{
		{"--sale", "drop", "--users", "0"},
		{"--sale", "drop", "--quantity", "-1"},
		{"--sale", "drop", "--retry-share", "2"},
		{"--sale", "drop", "--connections", "0"},
		{"--sale", "drop", "--timeout", "-1s"},
		{"--sale", "drop", "--duration", "-1s"},
		{"--sale", "drop", "--user-prefix", "a.b"},
		{"--sale", "a/b"},
		{"--stock", "5", "--per-user-limit", "10"},
		{"--stock", "5", "--quantity", "2"},
	} {
		before := sent.Load()
		code, stdout, stderr := runCLI(ctx, append([]string{"bench", "--server", proxy.URL, "--retry-share", "0"}, args...)...)
		if n := sent.Load() - before; code != 2 || !oneLine(stderr) || n != 0 {
			t.Errorf("surge bench %s: exit %d, %d requests sent, stdout %q, stderr %q; want exit 2, one line and no request",
				strings.Join(args, " "), code, n, stdout, stderr)
		}
	}
	if s, err := admin.Sale(ctx, "drop"); err != nil || s.Remaining != 50 {
		t.Errorf("the sale after the refusals: %+v, %v; want its 50 units", s, err)
	}
}
