package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// newTracer returns what fills pgx's one tracer slot for opt: the spans
// of otelpgx (without Options.Tracing, none) and the durations of
// Options.Observe (nil: none), both through pgx's multitracer; nil when
// opt asks for nothing.
func newTracer(opt Options) pgx.QueryTracer {
	var ts []pgx.QueryTracer
	if opt.Tracing != nil {
		// otelpgx's own metrics would go to otel's global meter provider:
		// Surge's metrics are Prometheus's (Observe).
		ts = append(ts, otelpgx.NewTracer(otelpgx.WithTracerProvider(opt.Tracing), otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelpgx.WithDisableAcquireTracer()))
	}
	if opt.Observe != nil {
		ts = append(ts, timer{opt.Observe})
	}
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	return multitracer.New(ts...)
}

// timer times queries, batches and connects for Options.Observe.
type timer struct {
	observe func(op string, d time.Duration)
}

// started is when a timed call began, and its op label.
type started struct {
	at time.Time
	op string
}

type startedKey struct{}

func (t timer) start(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, startedKey{}, started{time.Now(), op})
}

func (t timer) end(ctx context.Context) {
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

func (t timer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, opOf(data.SQL))
}

func (t timer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) { t.end(ctx) }

func (t timer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return t.start(ctx, "batch")
}

func (t timer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t timer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) { t.end(ctx) }

func (t timer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	return t.start(ctx, "connect")
}

func (t timer) TraceConnectEnd(ctx context.Context, _ pgx.TraceConnectEndData) { t.end(ctx) }

var (
	_ pgx.QueryTracer   = timer{}
	_ pgx.BatchTracer   = timer{}
	_ pgx.ConnectTracer = timer{}
)

// instrument installs opt's tracer, if any, in cfg.
func instrument(cfg *pgxpool.Config, opt Options) {
	if t := newTracer(opt); t != nil {
		cfg.ConnConfig.Tracer = t
	}
}
