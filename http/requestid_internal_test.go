package http

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestLogHandler: records logged with a request's context carry its
// request id and trace id; others carry neither.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "x")
	q := &RequestsHandler{ids: newRequestIDs()}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	r := q.withRequestID(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	log.InfoContext(r.Context(), "inside")
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	if id := RequestID(r.Context()); id == "" || !strings.Contains(lines[0], "request_id="+id) || !strings.Contains(lines[0], "trace_id="+tid.String()) {
		t.Errorf("inside: %s (id %q)", lines[0], id)
	}
	if strings.Contains(lines[1], "request_id") || strings.Contains(lines[1], "trace_id") {
		t.Errorf("outside: %s", lines[1])
	}
}

// TestRequestIDAllocs: on an HTTP/1 connection with its holder
// (ConnContext), a request that brings a sane id costs no allocation and
// one that needs one its string; without a holder (HTTP/2) the request's
// context and net/http's copy of the request come on top.
func TestRequestIDAllocs(t *testing.T) {
	q := &RequestsHandler{ids: newRequestIDs()}
	w := httptest.NewRecorder()
	conn := ConnContext(context.Background(), nil)
	for _, c := range []struct {
		name  string
		id    string
		proto int
		ctx   context.Context
		want  float64
	}{
		{"http1 sane", "req-1", 1, conn, 0},
		{"http1 generated", "", 1, conn, 1},
		{"http2 sane", "req-1", 2, conn, 2},
		{"http2 generated", "", 2, conn, 3},
		{"no holder", "req-1", 1, context.Background(), 2},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(c.ctx)
		r.ProtoMajor = c.proto
		if c.id != "" {
			r.Header.Set("X-Request-ID", c.id)
		}
		if n := testing.AllocsPerRun(1000, func() { q.withRequestID(w, r) }); n > c.want {
			t.Errorf("%s: %.1f allocations, want at most %.0f", c.name, n, c.want)
		}
	}
}
