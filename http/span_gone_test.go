package http_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	surgehttp "github.com/surgehq/surge/http"
)

// TestSpanClientGone: the span of a purchase whose client went away
// while its batch waited for the store must not read as a success.
// otelhttp records the 200 net/http falls back to when nothing was
// written; the span says the request failed before an answer was sent
// (status Error, error.type client_gone), as the access log says 499.
func TestSpanClientGone(t *testing.T) {
	eng, dir := goneSale(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	api := surgehttp.Requests(surgehttp.New(eng, surgehttp.Config{InsecureUserHeader: true, Logger: quietLog}),
		surgehttp.RequestOptions{Logger: quietLog})
	srv := httptest.NewServer(otelhttp.NewHandler(api, "surge", otelhttp.WithTracerProvider(tp)))
	defer srv.Close()
	defer leaveUnanswered(t, srv, dir)()
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
