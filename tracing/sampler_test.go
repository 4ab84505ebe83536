package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestClientCannotForceSampling: a public request's traceparent with the
// sampled flag must not override the configured ratio: with
// parentbased_traceidratio at 0, any client could otherwise have every
// request it sends traced and exported (a cheap way to multiply tracing
// cost under a spike). The SDK's parentbased samplers follow a remote
// parent's flag. The request's span still continues the caller's trace
// when it is sampled (ratio 1).
func TestClientCannotForceSampling(t *testing.T) {
	for _, c := range []struct {
		sampler, ratio string
		want           int // spans kept of the requests sent
	}{
		{"parentbased_traceidratio", "0", 0},
		{"traceidratio", "0", 0},
		{"parentbased_always_off", "", 0},
		{"parentbased_traceidratio", "1", 20},
		{"", "", 20}, // the default, parentbased_always_on
	} {
		t.Run(fmt.Sprintf("%s=%s", c.sampler, c.ratio), func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
			t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.ratio)
			exp := tracetest.NewInMemoryExporter()
			p, err := New(context.Background(), Options{Logger: slog.New(slog.DiscardHandler), exporter: keep{exp}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), "surge",
				otelhttp.WithTracerProvider(p.Tracing()), otelhttp.WithPropagators(Propagator())))
			defer srv.Close()
			const sent = 20
			for i := range sent {
				getWithParent(t, srv, fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)) // sampled
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != c.want {
				t.Fatalf("%d of %d requests whose traceparent said sampled were traced; want %d (OTEL_TRACES_SAMPLER=%q, ratio %q)",
					len(spans), sent, c.want, c.sampler, c.ratio)
			}
			for _, s := range spans {
				if !s.Parent.IsRemote() || !s.Parent.TraceID().IsValid() || s.SpanContext.TraceID() != s.Parent.TraceID() {
					t.Errorf("span %s does not continue the caller's trace (parent %v)", s.Name, s.Parent)
				}
			}
		})
	}
}

// keep keeps the spans exported past Shutdown, which flushes them (the
// in-memory exporter's own Shutdown forgets them).
type keep struct{ *tracetest.InMemoryExporter }

func (keep) Shutdown(context.Context) error { return nil }

// TestClientCannotChooseASampledTraceID: the ratio samplers decide on the
// trace id, and a caller's traceparent chooses the trace id, so a client
// sending ids whose low 64 bits are zero (under any ratio's bound) had
// every request traced and exported at a ratio of 1 %, the sampled flag
// notwithstanding. A request with a remote parent must be kept at about
// the configured ratio whatever id it names, and the spans the request
// makes beneath its own must follow its decision, not the id's.
func TestClientCannotChooseASampledTraceID(t *testing.T) {
	for _, sampler := range []string{"parentbased_traceidratio", "traceidratio"} {
		t.Run(sampler, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
			t.Setenv("OTEL_TRACES_SAMPLER", sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
			exp := tracetest.NewInMemoryExporter()
			p, err := New(context.Background(), Options{Logger: slog.New(slog.DiscardHandler), exporter: keep{exp}})
			if err != nil {
				t.Fatal(err)
			}
			tracer := p.Tracing().Tracer("test")
			srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, span := tracer.Start(r.Context(), "child") // a store call, say
				span.End()
			}), "surge", otelhttp.WithTracerProvider(p.Tracing()), otelhttp.WithPropagators(Propagator())))
			defer srv.Close()
			const sent = 400
			for i := range sent {
				// The high half differs per request, the low half (what
				// the ratio reads) is zero; sampled and not alike.
				getWithParent(t, srv, fmt.Sprintf("00-%016x0000000000000000-%016x-%02d", i+1, i+1, i%2))
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			requests, children := 0, 0
			for _, s := range exp.GetSpans() {
				if s.Name == "child" {
					children++
				} else {
					requests++
				}
			}
			// At 1 % about 4 of 400 are kept; 40 or more has a chance
			// below 1e-20.
			const most = 40
			if requests >= most || children >= most {
				t.Fatalf("a client choosing trace ids with a zero low half had %d of %d requests (and %d of their child spans) traced at OTEL_TRACES_SAMPLER=%s, ratio 0.01; want fewer than %d",
					requests, sent, children, sampler, most)
			}
			if children != requests {
				t.Errorf("%d request spans kept but %d of their child spans; want a child kept exactly when its request is", requests, children)
			}
		})
	}
}

// TestTrustParentFollowsTheFlag: behind a gateway that sets every
// request's traceparent, the operator trusts its sampled flag
// (Options.TrustParent, --trace-trust-parent): a request whose parent says
// sampled is kept and one whose parent says not is dropped, whatever the
// configured sampler decides of roots; SetTrustParent(false), as a reload
// does, ignores the flag again from the next request.
func TestTrustParentFollowsTheFlag(t *testing.T) {
	for _, c := range []struct{ sampler, ratio string }{
		{"parentbased_always_off", ""},
		{"parentbased_traceidratio", "0"},
		{"traceidratio", "0"},
		{"", ""}, // parentbased_always_on
	} {
		t.Run(fmt.Sprintf("%s=%s", c.sampler, c.ratio), func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
			t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.ratio)
			exp := tracetest.NewInMemoryExporter()
			p, err := New(context.Background(), Options{Logger: slog.New(slog.DiscardHandler), exporter: keep{exp}, TrustParent: true})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), "surge",
				otelhttp.WithTracerProvider(p.Tracing()), otelhttp.WithPropagators(Propagator())))
			defer srv.Close()
			send := func(id int, flags string) {
				getWithParent(t, srv, fmt.Sprintf("00-%032x-%016x-%s", id, id, flags))
			}
			const sent = 20
			for i := range sent {
				send(1+i, "01")    // kept
				send(1001+i, "00") // dropped
			}
			p.SetTrustParent(false)
			for i := range sent {
				send(2001+i, "01") // as the sampler decides: ratio 0 or off keeps none
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			kept, untrusted := map[int]bool{}, 0
			for _, s := range exp.GetSpans() {
				id := s.SpanContext.TraceID()
				n := int(id[14])<<8 | int(id[15])
				switch {
				case n > 2000:
					untrusted++
				case n > 1000:
					t.Errorf("a request whose trusted traceparent said not sampled (-00) was traced")
				default:
					kept[n] = true
				}
				if !s.Parent.IsRemote() || s.SpanContext.TraceID() != s.Parent.TraceID() {
					t.Errorf("span %s does not continue the caller's trace (parent %v)", s.Name, s.Parent)
				}
			}
			if len(kept) != sent {
				t.Errorf("%d of %d requests whose trusted traceparent said sampled (-01) were traced; want all (OTEL_TRACES_SAMPLER=%q, ratio %q)", len(kept), sent, c.sampler, c.ratio)
			}
			if want := map[string]int{"": sent}[c.sampler]; untrusted != want {
				t.Errorf("after SetTrustParent(false), %d of %d requests whose traceparent said sampled were traced; want %d, as the sampler decides (OTEL_TRACES_SAMPLER=%q, ratio %q)", untrusted, sent, want, c.sampler, c.ratio)
			}
		})
	}
}

// getWithParent sends srv a GET whose traceparent header is parent.
func getWithParent(t *testing.T, srv *httptest.Server, parent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("traceparent", parent)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
