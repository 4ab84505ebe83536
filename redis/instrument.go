package redis

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge/internal/logrepeat"
)

// Instrument makes c trace and time its calls: with tp, a span per
// command or pipeline (go-redis's redisotel) under the caller's context;
// its arguments are not recorded (they carry buyers' ids and keys);
// with observe, each call's duration, op being the command's name
// ("evalsha", "get", …), "pipeline" for a pipeline, "dial" for a new
// connection. Nil arguments add nothing.
func Instrument(c Client, tp trace.TracerProvider, observe func(op string, d time.Duration)) error {
	if tp != nil {
		// No db.statement: redisotel would record each command whole,
		// arguments included, and a reservation's carry the buyers' user
		// ids, Idempotency-Keys and order ids (PostgreSQL's spans record
		// statements without their arguments alike). The span is still
		// named by the command.
		if err := redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(tp), redisotel.WithDBStatement(false)); err != nil {
			return fmt.Errorf("redis: tracing: %w", err)
		}
	}
	if observe != nil {
		c.AddHook(timing{observe})
	}
	return nil
}

// timing is a go-redis hook that reports durations.
type timing struct {
	observe func(op string, d time.Duration)
}

func (h timing) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		conn, err := next(ctx, network, addr)
		h.observe("dial", time.Since(start))
		return conn, err
	}
}

func (h timing) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(cmd.Name(), time.Since(start))
		return err
	}
}

func (h timing) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe("pipeline", time.Since(start))
		return err
	}
}

// LogTo sends go-redis's own log lines (failed dials, dropped
// connections) to log as warnings, instead of the standard log package
// on stderr, which would break --log-format json. go-redis keeps one
// logger per process, so this sets it for every client. While Redis is
// down each failed dial would write a line: a line of one format is
// written at most once a logrepeat.Every, with the count of those left
// out.
func LogTo(log *slog.Logger) {
	goredis.SetLogger(slogLogger{log: log.With("component", "go-redis"), repeats: logrepeat.New(logrepeat.Every)})
}

type slogLogger struct {
	log     *slog.Logger
	repeats *logrepeat.Limiter
}

func (l slogLogger) Printf(ctx context.Context, format string, v ...any) {
	// By format: its arguments (an address, an attempt's error) differ
	// between the repeats of one failure.
	n, ok := l.repeats.Allow(format)
	if !ok {
		return
	}
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), logrepeat.Suppressed(n))
}
