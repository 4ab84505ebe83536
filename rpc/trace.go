package rpc

import (
	"context"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// callSpans gives the span of a call (otelhttp's, when tracing is on) the
// call's code, as the HTTP API's span has its status: gRPC and gRPC-Web
// answer every call HTTP 200, its code in a trailer, so otelhttp saw each
// gRPC call succeed, a failed purchase or a refused stream too. A call that
// failed on the server's side (the codes the Connect protocol answers with
// a 5xx) is marked failed, as otelhttp marks an HTTP 5xx.
type callSpans struct{}

func (callSpans) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		markSpan(ctx, err)
		return resp, err
	}
}

func (callSpans) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (callSpans) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		markSpan(ctx, err)
		return err
	}
}

// markSpan records err's code (0 when nil) on ctx's span, if it records.
func markSpan(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	var code connect.Code // 0: OK
	if err != nil {
		code = connect.CodeOf(err)
	}
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	switch code {
	case connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeUnimplemented,
		connect.CodeInternal, connect.CodeUnavailable, connect.CodeDataLoss:
		span.SetStatus(codes.Error, err.Error())
	}
}
