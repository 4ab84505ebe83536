package http_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/payments"
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
	srv := httptest.NewServer(surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: quietLog,
		Payments: surgehttp.Payments{Provider: payments.Generic, Secrets: []string{hookSecret}}}))
	t.Cleanup(func() { srv.Close(); _ = eng.Close(); _ = store.Close() })
	e := &env{eng: eng, store: store, clock: clk, srv: srv}
	e.createSale(t, `{"id":"s","name":"S","stock":5,"price_cents":12999,"currency":"EUR"}`)
	o := e.buy(t, "s", header(userHeader, "alice"))

	// Another process takes the write lock and keeps it.
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.ExecContext(ctx, "ROLLBACK"); conn.Close() })

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
