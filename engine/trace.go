package engine

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the engine's spans' instrumentation scope.
const tracerName = "github.com/surgehq/surge/engine"

// noSpan ends nothing: what traceBatch returns when tracing is off, so
// that an untraced batch costs no allocation.
func noSpan(error) {}

// traceBatch starts the spans of one store call: the batch, a root of its
// own linked to and from the span of every purchase it carries (a batch serves
// many requests, so it is no request's child), and under it the store
// call, whose context it returns for Reserve (in cluster mode the Redis
// and PostgreSQL spans hang under it). end closes both with the call's
// error.
func (e *Engine) traceBatch(ctx context.Context, s *sale, live []*request) (_ context.Context, end func(error)) {
	if e.tracer == nil {
		return ctx, noSpan
	}
	links := make([]trace.Link, 0, len(live))
	for _, r := range live {
		if sc := trace.SpanContextFromContext(r.ctx); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, batch := e.tracer.Start(ctx, "batch", trace.WithNewRoot(), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("surge.sale", s.ID), attribute.Int("surge.batch.size", len(live))))
	// And each purchase's span links to its batch: a span keeps at most
	// 128 links (the SDK's default OTEL_SPAN_LINK_COUNT_LIMIT) and a batch
	// carries up to MaxBatch purchases, so the batch's own links miss the
	// rest; one link on each purchase's span is never dropped, and leads
	// from any purchase's trace to its batch.
	to := trace.Link{SpanContext: batch.SpanContext()}
	for _, r := range live {
		if sp := trace.SpanFromContext(r.ctx); sp.IsRecording() {
			sp.AddLink(to)
		}
	}
	ctx, commit := e.tracer.Start(ctx, "store.Reserve")
	return ctx, func(err error) {
		if err != nil {
			commit.RecordError(err)
			commit.SetStatus(codes.Error, err.Error())
			batch.SetStatus(codes.Error, err.Error())
		}
		commit.End()
		batch.End()
	}
}
