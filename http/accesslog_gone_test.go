package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// accessLines is an slog.Handler that keeps the access log's records.
type accessLines struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (h *accessLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *accessLines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *accessLines) WithGroup(string) slog.Handler            { return h }
func (h *accessLines) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request" {
		return nil
	}
	rec := map[string]any{}
	r.Attrs(func(a slog.Attr) bool { rec[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

// waitFor returns the first record of path, waiting for it up to 10 s.
func (h *accessLines) waitFor(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, rec := range h.recs {
			if rec["path"] == path {
				h.mu.Unlock()
				return rec
			}
		}
		h.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no access log line for %s within 10 s", path)
	return nil
}

// goneSale opens a real SQLite store and engine holding sale "gone" (5
// units), and returns the engine and the store's directory.
func goneSale(t *testing.T) (*engine.Engine, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	id, name, stock := "gone", "Gone", int64(5)
	if _, err := eng.CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock}); err != nil {
		t.Fatal(err)
	}
	return eng, dir
}

// leaveUnanswered sends alice's purchase of sale gone to srv while
// another process holds the write lock of the store in dir (its batch
// cannot commit, and the purchase waits for it), and leaves it unanswered
// after 300 ms, as a buyer closing the tab; it returns the lock's release.
func leaveUnanswered(t *testing.T, srv *httptest.Server, dir string) (release func()) {
	t.Helper()
	release = servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, sqlite.FileName))
	rctx, leave := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, srv.URL+"/v1/sales/gone/purchases", strings.NewReader(""))
	req.Header.Set("X-User-ID", "alice")
	time.AfterFunc(300*time.Millisecond, leave)
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the purchase was answered %d before its client left", resp.StatusCode)
	}
	return release
}

// TestAccessLogClientGone: a purchase whose client goes away while its
// batch waits for the store gets no answer (purchase.go), and the access
// log must not say it was answered 200 with an empty body, the line of a
// success: it says 499, nginx's mark of a client that closed its request
// (docs/observability.md, access log).
func TestAccessLogClientGone(t *testing.T) {
	eng, dir := goneSale(t)
	lines := &accessLines{}
	srv := httptest.NewServer(surgehttp.Requests(surgehttp.New(eng, surgehttp.Config{InsecureUserHeader: true, Logger: quietLog}),
		surgehttp.RequestOptions{Logger: slog.New(lines), AccessLog: true}))
	defer srv.Close()
	release := leaveUnanswered(t, srv, dir)
	rec := lines.waitFor(t, "/v1/sales/gone/purchases")
	release()
	b, _ := json.Marshal(rec)
	if got := rec["status"]; got != int64(499) {
		t.Errorf("access log of a purchase whose client left unanswered: status=%v, want 499 (%s)", got, b)
	}
	if got := rec["bytes"]; got != int64(0) {
		t.Errorf("access log of a purchase whose client left unanswered: bytes=%v, want 0 (%s)", got, b)
	}
}

// failingExport is the real engine whose order export fails after its
// first order, as a store that fails mid-read does.
type failingExport struct{ *engine.Engine }

func (f failingExport) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	stop := errors.New("the store failed mid-export")
	err := f.Engine.Orders(ctx, saleID, func(o surge.Order) error {
		if err := fn(o); err != nil {
			return err
		}
		return stop
	})
	return err
}

// TestAccessLogAbortedExport: an order export that fails after its 200
// went out is cut (no terminating chunk, so the client knows it is
// incomplete) by panicking with http.ErrAbortHandler. The access log,
// one line per request, wrote none for it: the request an operator looks
// for when a consumer reports a short export was missing from the log.
// Its line says the answer was cut (aborted=true).
func TestAccessLogAbortedExport(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true, noServer: true})
	lines := &accessLines{}
	srv := httptest.NewServer(surgehttp.Requests(
		surgehttp.New(failingExport{e.eng}, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: quietLog}),
		surgehttp.RequestOptions{Logger: slog.New(lines), AccessLog: true}))
	t.Cleanup(srv.Close)
	e.srv = srv
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	for _, u := range []string{"alice", "bob"} {
		e.buy(t, "s", header("X-User-ID", u))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/sales/s/orders", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	// The client sees the answer cut, or no answer at all when the cut
	// came before the first write left the server's buffers.
	if resp, err := srv.Client().Do(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("the export failing mid-way ended cleanly (%d)", resp.StatusCode)
		}
	}
	rec := lines.waitFor(t, "/v1/sales/s/orders")
	if rec["status"] != int64(http.StatusOK) || rec["aborted"] != true {
		b, _ := json.Marshal(rec)
		t.Errorf("access log of the cut export: %s, want status 200 (the status begun) and aborted=true", b)
	}
}
