package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// tracer is pgx's one tracer slot, shared by the spans of otelpgx (nil
// without Options.Tracing) and the durations of Options.Observe (nil:
// none).
type tracer struct {
	otel    *otelpgx.Tracer
	observe func(op string, d time.Duration)
}

// newTracer returns pgx's tracer for opt, nil when it asks for nothing.
func newTracer(opt Options) *tracer {
	if opt.Tracing == nil && opt.Observe == nil {
		return nil
	}
	t := &tracer{observe: opt.Observe}
	if opt.Tracing != nil {
		// otelpgx's own metrics would go to otel's global meter provider:
		// Surge's metrics are Prometheus's (Observe).
		t.otel = otelpgx.NewTracer(otelpgx.WithTracerProvider(opt.Tracing), otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelpgx.WithDisableAcquireTracer())
	}
	return t
}

// started is when a timed call began, and its op label.
type started struct {
	at time.Time
	op string
}

type startedKey struct{}

func (t *tracer) start(ctx context.Context, op string) context.Context {
	if t.observe == nil {
		return ctx
	}
	return context.WithValue(ctx, startedKey{}, started{time.Now(), op})
}

func (t *tracer) end(ctx context.Context) {
	if s, ok := ctx.Value(startedKey{}).(started); ok {
		t.observe(s.op, time.Since(s.at))
	}
}

// opOf is a statement's op label: its first keyword in lower case
// ("select", "insert", "begin", …), a small set fixed by this package's
// SQL.
func opOf(sql string) string {
	return strings.ToLower(otelpgx.SQLOperationName(context.Background(), sql))
}

func (t *tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if t.otel != nil {
		ctx = t.otel.TraceQueryStart(ctx, conn, data)
	}
	return t.start(ctx, opOf(data.SQL))
}

func (t *tracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx)
	if t.otel != nil {
		t.otel.TraceQueryEnd(ctx, conn, data)
	}
}

func (t *tracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if t.otel != nil {
		ctx = t.otel.TraceBatchStart(ctx, conn, data)
	}
	return t.start(ctx, "batch")
}

func (t *tracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if t.otel != nil {
		t.otel.TraceBatchQuery(ctx, conn, data)
	}
}

func (t *tracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx)
	if t.otel != nil {
		t.otel.TraceBatchEnd(ctx, conn, data)
	}
}

func (t *tracer) TraceConnectStart(ctx context.Context, data pgx.TraceConnectStartData) context.Context {
	if t.otel != nil {
		ctx = t.otel.TraceConnectStart(ctx, data)
	}
	return t.start(ctx, "connect")
}

func (t *tracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	t.end(ctx)
	if t.otel != nil {
		t.otel.TraceConnectEnd(ctx, data)
	}
}

func (t *tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if t.otel != nil {
		ctx = t.otel.TracePrepareStart(ctx, conn, data)
	}
	return ctx
}

func (t *tracer) TracePrepareEnd(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareEndData) {
	if t.otel != nil {
		t.otel.TracePrepareEnd(ctx, conn, data)
	}
}

var (
	_ pgx.QueryTracer   = (*tracer)(nil)
	_ pgx.BatchTracer   = (*tracer)(nil)
	_ pgx.ConnectTracer = (*tracer)(nil)
	_ pgx.PrepareTracer = (*tracer)(nil)
)

// instrument installs opt's tracer, if any, in cfg.
func instrument(cfg *pgxpool.Config, opt Options) {
	if t := newTracer(opt); t != nil {
		cfg.ConnConfig.Tracer = t
	}
}
