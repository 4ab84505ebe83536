package tracing

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		on, err bool
	}{
		{env: nil},
		{env: map[string]string{"OTEL_SERVICE_NAME": "x"}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4318/v1/traces"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"}},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "h:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, err: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "h:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, on: true},
	} {
		on, err := enabled(func(k string) string { return c.env[k] })
		if on != c.on || (err != nil) != c.err {
			t.Errorf("%v: on %v err %v, want on %v err %v", c.env, on, err, c.on, c.err)
		}
	}
}

// TestSamplerMistakeRefused: an operator who asks for 1 % of the traces
// under a spike and mistypes the sampler or its ratio must be told at
// start, as for an unsupported exporter or protocol. The SDK only logs
// such a mistake and samples every trace (a ratio it cannot read is 1.0,
// an unknown sampler the default, always on).
func TestSamplerMistakeRefused(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1%"},
		{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0,01"},
		{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "-0.01"},
		{"OTEL_TRACES_SAMPLER": "parentbased_ratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
	} {
		t.Run(env["OTEL_TRACES_SAMPLER"]+"="+env["OTEL_TRACES_SAMPLER_ARG"], func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			for k, v := range env {
				t.Setenv(k, v)
			}
			p, err := New(context.Background(), Options{})
			if err != nil {
				return // refused: what the operator needs
			}
			sampled := 0
			const spans = 100
			for range spans {
				_, s := p.Tracing().Tracer("test").Start(context.Background(), "root")
				if s.SpanContext().IsSampled() {
					sampled++
				}
				s.End()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = p.Shutdown(ctx)
			t.Errorf("OTEL_TRACES_SAMPLER=%s OTEL_TRACES_SAMPLER_ARG=%s started, and samples %d of %d traces: want a refusal at start",
				env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"], sampled, spans)
		})
	}
	// A sampler written right still starts.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
	p, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatalf("parentbased_traceidratio 0.01: %v", err)
	}
	_ = p.Shutdown(context.Background())
}

// TestSpanAttributesBounded: a span keeps what a client sent it (the
// User-Agent, the path: up to the 64 KiB of headers a request may carry),
// and the SDK keeps any length by default, so the 2,048 spans the export
// queue holds could hold 128 MiB of one client's choosing. A value is
// kept to maxAttributeValue unless the environment sets its own bound.
func TestSpanAttributesBounded(t *testing.T) {
	long := strings.Repeat("x", 64<<10)
	for _, c := range []struct {
		env  map[string]string
		want int
	}{
		{want: maxAttributeValue},
		{env: map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"}, want: 100},
		{env: map[string]string{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-1"}, want: len(long)},
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		p, err := New(context.Background(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, s := p.Tracing().Tracer("test").Start(context.Background(), "root")
		s.SetAttributes(attribute.String("user_agent.original", long))
		got := -1
		for _, kv := range s.(sdktrace.ReadOnlySpan).Attributes() {
			if kv.Key == "user_agent.original" {
				got = len(kv.Value.AsString())
			}
		}
		s.End()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.Shutdown(ctx)
		cancel()
		if got != c.want {
			t.Errorf("environment %v: a span kept %d bytes of a %d-byte attribute a client sent, want %d", c.env, got, len(long), c.want)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}
