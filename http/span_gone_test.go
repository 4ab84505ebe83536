package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// TestSpanClientGone: the span of a purchase whose client went away
// while its batch waited for the store must not read as a success.
// otelhttp records the 200 net/http falls back to when nothing was
// written; the span says the request failed before an answer was sent
// (status Error, error.type client_gone), as the access log says 499.
func TestSpanClientGone(t *testing.T) {
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
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	api := surgehttp.Requests(surgehttp.New(eng, surgehttp.Config{InsecureUserHeader: true, Logger: quietLog}),
		surgehttp.RequestOptions{Logger: quietLog})
	srv := httptest.NewServer(otelhttp.NewHandler(api, "surge", otelhttp.WithTracerProvider(tp)))
	defer srv.Close()
	// Another process holds SQLite's write lock: the purchase's batch
	// cannot commit, and the purchase waits for it.
	release := servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, sqlite.FileName))
	defer release()

	rctx, leave := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, srv.URL+"/v1/sales/gone/purchases", strings.NewReader(""))
	req.Header.Set("X-User-ID", "alice")
	time.AfterFunc(300*time.Millisecond, leave) // the buyer closes the tab while the purchase waits
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the purchase was answered %d before its client left", resp.StatusCode)
	}
	var span sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); span == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no span ended for the purchase within 10 s")
		}
		if ended := rec.Ended(); len(ended) > 0 {
			span = ended[0]
		}
	}
	attrs := map[string]string{}
	for _, a := range span.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if st := span.Status(); st.Code != codes.Error || attrs["error.type"] != "client_gone" {
		t.Errorf("span of a purchase whose client left unanswered: status %v %q, error.type %q (attributes %v); "+
			"want status Error, error.type client_gone", st.Code, st.Description, attrs["error.type"], attrs)
	}
}
