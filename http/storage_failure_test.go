package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/payments"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// TestStorageFailureIsUnavailable: when the database cannot be written
// (here another process holds SQLite's write lock past the busy timeout,
// as a backup tool or an operator's sqlite3 shell can), PATCH, cancel and
// the payment webhook answer 503 unavailable, as docs/api.md and the OpenAPI promise
// ("storage failure; nothing changed, retry"), so that clients retry; not
// 500 internal, which says the server is broken and is not retried.
func TestStorageFailureIsUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out SQLite's 10 s busy timeout three times")
	}
	e, _, dir := pricedSaleOverSQLite(t, quietLog)
	o := e.buy(t, "s", header(userHeader, "alice"))
	servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, sqlite.FileName)) // another process takes the write lock and keeps it

	wantError(t, e.do(t, "PATCH", "/v1/sales/s", `{"paused":true}`, asAdmin()), http.StatusServiceUnavailable, "unavailable")
	wantError(t, e.do(t, "POST", "/v1/orders/"+o.ID+"/cancel", "", header(userHeader, "alice")), http.StatusServiceUnavailable, "unavailable")
	// The payment webhook too (docs/payments.md: "the store failing | 503
	// unavailable | nothing recorded: the provider retries").
	body := hookBody("evt_1", "payment.succeeded", o.ID, 12999, "EUR")
	r := e.do(t, "POST", hookPath, body, signed(hookSecret, body))
	wantError(t, r, http.StatusServiceUnavailable, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("the webhook's %d carries no Retry-After", r.status)
	}
}

// TestOrderChangeClientGoneIsNotInternal: a cancel, an operator's pay and
// a payment webhook wait for a store that cannot commit (another process
// holds SQLite's write lock). When the client gives up meanwhile (its own
// timeout, a closed connection, an HTTP/2 stream reset: net/http cancels
// the request's context), the change goes on, and the API must not answer
// 500 internal nor log "request failed" at error level: docs/observability.md
// calls any internal a bug, and the client merely went away. The purchase
// path already treats a gone client so (purchase.go); gRPC answers Canceled.
func TestOrderChangeClientGoneIsNotInternal(t *testing.T) {
	// The engine's default timeout (10 s): the client leaves well before.
	logs := newErrorRecorder()
	e, h, dir := pricedSaleOverSQLite(t, slog.New(logs))
	var placed []api.Order
	for _, u := range []string{"alice", "bob", "carol"} {
		placed = append(placed, e.buy(t, "s", header(userHeader, u)))
	}
	servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, sqlite.FileName))

	hook := hookBody("evt_gone", "payment.succeeded", placed[2].ID, 12999, "EUR")
	for i, tc := range []struct {
		name, path, body string
		opts             []opt
	}{
		{"cancel", "/v1/orders/" + placed[0].ID + "/cancel", "", []opt{header(userHeader, "alice")}},
		{"pay", "/v1/orders/" + placed[1].ID + "/pay", "", []opt{asAdmin()}},
		{"payment webhook", hookPath, hook, []opt{signed(hookSecret, hook)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged := len(logs.Messages())
			rctx, gone := context.WithCancel(context.Background())
			req := httptest.NewRequestWithContext(rctx, "POST", tc.path, strings.NewReader(tc.body))
			for _, o := range tc.opts {
				o(req)
			}
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { defer close(done); h.ServeHTTP(rec, req) }()
			// The client leaves while the change waits for the store.
			time.AfterFunc(200*time.Millisecond, gone)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: no answer 30 s after the client left", tc.name)
			}
			if rec.Code == http.StatusInternalServerError {
				t.Errorf("%s whose client left while the store could not commit answered %d %s: "+
					"a client going away is counted and logged as a server bug (internal)", tc.name, rec.Code, strings.TrimSpace(rec.Body.String()))
			}
			if msgs := logs.Messages()[logged:]; len(msgs) > 0 {
				t.Errorf("%s whose client left logged at error level: %q (change %d)", tc.name, msgs, i)
			}
		})
	}
}

// pricedSaleOverSQLite serves the API (payments on) over an engine and an
// embedded store in a directory of its own, returned, with sale "s" (5
// units at 129.99 EUR) created.
func pricedSaleOverSQLite(t *testing.T, log *slog.Logger) (*env, http.Handler, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.New(epoch)
	eng, err := engine.Open(ctx, store, engine.Config{Now: clk.Now, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	h := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log,
		Payments: surgehttp.Payments{Provider: payments.Generic, Secrets: []string{hookSecret}}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); _ = eng.Close(); _ = store.Close() })
	e := &env{eng: eng, store: store, clock: clk, srv: srv}
	e.createSale(t, `{"id":"s","name":"S","stock":5,"price_cents":12999,"currency":"EUR"}`)
	return e, h, dir
}
