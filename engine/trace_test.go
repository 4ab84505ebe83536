package engine

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/surgehq/surge"
)

// TestBatchSpan: a batch's span is a root linked to the span of each
// purchase it carries, and the store call is its child.
func TestBatchSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := testConfig(fixedClock())
	cfg.Tracing = tp
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("s", 10, 1))

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	out, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", Purchase: surge.Purchase{UserID: "u", Quantity: 1}})
	req.End()
	if err != nil || out.Code != surge.CodeReserved {
		t.Fatalf("purchase: %v %v", out.Code, err)
	}
	var batch, commit sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "batch":
			batch = s
		case "store.Reserve":
			commit = s
		}
	}
	if batch == nil || commit == nil {
		t.Fatalf("spans %v: want batch and store.Reserve", rec.Ended())
	}
	if batch.Parent().IsValid() {
		t.Errorf("batch span has a parent %v, want a root", batch.Parent())
	}
	if l := batch.Links(); len(l) != 1 || !l[0].SpanContext.Equal(req.SpanContext()) {
		t.Errorf("batch links %v, want the request's span %v", l, req.SpanContext())
	}
	if commit.Parent().SpanID() != batch.SpanContext().SpanID() {
		t.Errorf("store.Reserve's parent %v, want the batch %v", commit.Parent().SpanID(), batch.SpanContext().SpanID())
	}
}
