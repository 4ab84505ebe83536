package engine

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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

// TestBatchSpanLinksEveryPurchase: the docs promise that from a
// purchase's trace one follows the link to its batch. A batch carries up
// to MaxBatch (512) purchases, but the SDK keeps at most 128 links on one
// span (OTEL_SPAN_LINK_COUNT_LIMIT's default): every purchase of a batch
// must still lead to it.
func TestBatchSpanLinksEveryPurchase(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := testConfig(fixedClock())
	cfg.Tracing = tp
	e, _, _, g := stalledEngine(t, cfg)
	const buyers = 200
	mustCreate(t, e, input("s", buyers+1, 1))
	ctx := context.Background()

	// The first purchase holds the store; the others queue behind it and
	// go to the store together, in the second batch.
	first := goPurchase(ctx, e, "s", surge.Purchase{UserID: "first", Quantity: 1})
	<-g.entered
	type req struct {
		span trace.Span
		ch   <-chan answer
	}
	reqs := make([]req, buyers)
	for i := range reqs {
		rctx, span := tp.Tracer("test").Start(ctx, "request")
		reqs[i] = req{span, goPurchase(rctx, e, "s", surge.Purchase{UserID: fmt.Sprintf("u%d", i), Quantity: 1})}
	}
	waitFor(t, "the buyers to queue", func() bool { return inboxLen(e, "s") == buyers })
	g.open()
	if a := <-first; a.err != nil {
		t.Fatal(a.err)
	}
	for _, r := range reqs {
		if a := <-r.ch; a.err != nil || a.out.Code != surge.CodeReserved {
			t.Fatalf("purchase: %v %v", a.out.Code, a.err)
		}
		r.span.End()
	}

	var batch sdktrace.ReadOnlySpan
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID()] = s
		if s.Name() == "batch" && hasAttr(s, "surge.batch.size", buyers) {
			batch = s
		}
	}
	if batch == nil {
		t.Fatalf("no batch span of %d purchases among %d spans", buyers, len(rec.Ended()))
	}
	linked := map[trace.SpanID]bool{}
	for _, l := range batch.Links() {
		linked[l.SpanContext.SpanID()] = true
	}
	lost := 0
	for _, r := range reqs {
		id := r.span.SpanContext().SpanID()
		toBatch := false
		for _, l := range byID[id].Links() {
			toBatch = toBatch || l.SpanContext.SpanID() == batch.SpanContext().SpanID()
		}
		if !linked[id] && !toBatch {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of the %d purchases of one batch have no link to or from it (the batch span kept %d links, dropped %d): their traces do not lead to the batch",
			lost, buyers, len(batch.Links()), batch.DroppedLinks())
	}
}

func hasAttr(s sdktrace.ReadOnlySpan, key string, v int64) bool {
	for _, a := range s.Attributes() {
		if string(a.Key) == key && a.Value.AsInt64() == v {
			return true
		}
	}
	return false
}
