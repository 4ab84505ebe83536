// Package tracing provides Surge's OpenTelemetry tracer provider,
// configured only by the standard OTEL_* environment variables, and off
// (a no-op provider that records nothing and costs nothing) unless they
// ask for an exporter. Spans are exported over OTLP/HTTP; incoming W3C
// traceparent headers are honoured (Propagator): a request's span
// continues the caller's trace, but the caller's sampled flag does not
// decide whether it is kept (sampler), unless the operator trusts it
// (Options.TrustParent: a gateway in front sets every traceparent).
//
// The packages that make spans take a trace.TracerProvider (nil: none),
// so nothing here is global: cmd/surge builds one Provider and hands it
// out. See docs/observability.md, "Traces and logs".
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Provider is the process's tracer provider.
type Provider struct {
	sdk *sdktrace.TracerProvider // nil when off
	// trust is what the sampler reads of Options.TrustParent, which
	// SetTrustParent changes (nil when off).
	trust *atomic.Bool
}

// SetTrustParent changes Options.TrustParent while the provider runs
// (cmd/surge's reload): from the next request on. A no-op when off.
func (p *Provider) SetTrustParent(on bool) {
	if p.trust != nil {
		p.trust.Store(on)
	}
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Tracing returns the provider when enabled and nil otherwise: what the
// engine, the cluster store and the HTTP wiring take, so that with
// tracing off they skip span work altogether instead of calling a no-op.
func (p *Provider) Tracing() trace.TracerProvider {
	if p.sdk == nil {
		return nil
	}
	return p.sdk
}

// Shutdown flushes the spans still buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Propagator reads and writes W3C traceparent/tracestate headers.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Options are what the environment does not say.
type Options struct {
	ServiceVersion string
	// Logger receives the SDK's own errors (a failed export) and log
	// lines, so that --log-format json stays JSON.
	Logger *slog.Logger
	// TrustParent has an incoming traceparent's sampled flag decide
	// whether its request is kept, as the SDK's parentbased samplers do
	// (--trace-trust-parent): for a server behind a gateway that sets
	// (or strips) every request's traceparent, whose sampling decision
	// the server's spans then complete. Off, no caller's flag decides;
	// on, neither does the flag of a request marked UntrustedParent.
	TrustParent bool
	// exporter, when set, receives the spans instead of OTLP (tests).
	exporter sdktrace.SpanExporter
}

// New builds the provider from the environment. Tracing is on when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set, or OTEL_TRACES_EXPORTER=otlp (the default endpoint,
// http://localhost:4318); OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none turn it off. The sampler is
// OTEL_TRACES_SAMPLER's (default parentbased_always_on), with remote
// parents decided as roots unless opt.TrustParent (see sampler). The exporter, the batching
// (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME, default "surge";
// OTEL_RESOURCE_ATTRIBUTES) read their own variables.
func New(ctx context.Context, opt Options) (*Provider, error) {
	on, err := enabled(os.Getenv)
	if err != nil || !on {
		return &Provider{}, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	var exp sdktrace.SpanExporter = opt.exporter
	if exp == nil {
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "surge")}
	if opt.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", opt.ServiceVersion))
	}
	// Later options win: the environment overrides the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The SDK reports export failures through otel's process-wide error
	// handler and logger, which default to the standard log package on
	// stderr; there is no per-provider setting, so they are pointed at
	// slog once here.
	log := opt.Logger.With("component", "otel")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	otel.SetLogger(logr.FromSlogHandler(log.Handler()))
	limits := sdktrace.NewSpanLimits() // the environment's, else the SDK's defaults
	if os.Getenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" && os.Getenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" {
		limits.AttributeValueLengthLimit = maxAttributeValue
	}
	trust := new(atomic.Bool)
	trust.Store(opt.TrustParent)
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(limits),
		sdktrace.WithSampler(sampler(os.Getenv, trust)))
	return &Provider{sdk: sdk, trust: trust}, nil
}

// maxAttributeValue bounds a span attribute's value (bytes of a string)
// unless OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT or its span twin sets a bound:
// spans keep what clients sent (the User-Agent, the path), and the SDK's
// default is no bound at all.
const maxAttributeValue = 1024

// enabled reads the OTEL_* variables that decide whether to trace.
func enabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "none":
		return false, nil
	case "otlp":
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return false, nil
		}
	default:
		return false, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%s is not supported (use otlp or none)", exp)
	}
	if err := checkSampler(getenv); err != nil {
		return false, err
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(k); p != "" {
			if p != "http/protobuf" {
				return false, fmt.Errorf("tracing: %s=%s is not supported (Surge exports OTLP over HTTP: http/protobuf)", k, p)
			}
			break
		}
	}
	return true, nil
}

// sampler is the sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// ask for (checked by checkSampler), except that nothing in an incoming
// traceparent decides whether a request is kept: the API is public, and
// the SDK's parentbased_* samplers follow a remote parent's sampled flag,
// so any client sending "-01" would have every request traced and
// exported whatever the ratio (a cheap way to multiply tracing's cost
// under a spike). Nor may the trace id decide: the ratio samplers read
// its low 64 bits, which the caller chooses, so ids whose low half is
// zero would be kept at any ratio. A request with a remote parent is
// kept with the configured probability, drawn here (remoteRatio); its
// span still continues the caller's trace. Local parents are followed,
// as the SDK does (for traceidratio too, which gives the same answer for
// a trace begun here, whose id is ours, and for one a caller began
// keeps the spans beneath a request with the request's span). A local
// root is decided as before. While trust holds true (Options.TrustParent)
// a remote parent's sampled flag decides after all, as in the SDK's
// parentbased samplers: the operator says a gateway sets it; unless the
// request's context says its caller is not that gateway (UntrustedParent).
func sampler(getenv func(string) string, trust *atomic.Bool) sdktrace.Sampler {
	ratio := 1.0 // the SDK's default
	if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
		if v, err := strconv.ParseFloat(arg, 64); err == nil {
			ratio = v
		}
	}
	var root, remote sdktrace.Sampler
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))) {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio", "parentbased_traceidratio":
		root, remote = sdktrace.TraceIDRatioBased(ratio), remoteRatio{ratio}
	case "parentbased_always_off":
		root = sdktrace.NeverSample()
		remote = root
	default: // "" and parentbased_always_on, the default
		root = sdktrace.AlwaysSample()
		remote = root
	}
	sampled := trustedParent{trust: trust, flag: sdktrace.AlwaysSample(), otherwise: remote}
	notSampled := trustedParent{trust: trust, flag: sdktrace.NeverSample(), otherwise: remote}
	return sdktrace.ParentBased(root, sdktrace.WithRemoteParentSampled(sampled), sdktrace.WithRemoteParentNotSampled(notSampled))
}

// trustedParent decides a span whose parent a caller sent: as the
// caller's sampled flag says (flag) while trust holds true, else as
// otherwise decides.
type trustedParent struct {
	trust           *atomic.Bool
	flag, otherwise sdktrace.Sampler
}

func (s trustedParent) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if s.trust.Load() && p.ParentContext.Value(untrustedKey{}) == nil {
		return s.flag.ShouldSample(p)
	}
	return s.otherwise.ShouldSample(p)
}

type untrustedKey struct{}

// UntrustedParent marks ctx, a request's, as sent by a caller whose
// traceparent's sampled flag Options.TrustParent does not cover: one that
// is not the gateway (cmd/surge: not among --trusted-proxies when they are
// set). Its span continues the caller's trace, but the sampler decides
// whether it is kept, as without TrustParent.
func UntrustedParent(ctx context.Context) context.Context {
	return context.WithValue(ctx, untrustedKey{}, true)
}

func (s trustedParent) Description() string {
	return fmt.Sprintf("TrustedParent{flag:%s,otherwise:%s}", s.flag.Description(), s.otherwise.Description())
}

// remoteRatio keeps a span whose parent a caller sent with probability
// ratio, drawn from this process's randomness: neither the caller's flag
// nor its trace id, both of its choosing, moves the draw.
type remoteRatio struct{ ratio float64 }

func (s remoteRatio) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	d := sdktrace.Drop
	if rand.Float64() < s.ratio { // [0, 1): a ratio of 1 keeps all, 0 none
		d = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (s remoteRatio) Description() string { return fmt.Sprintf("RemoteParentRatio{%g}", s.ratio) }

// checkSampler refuses an OTEL_TRACES_SAMPLER or OTEL_TRACES_SAMPLER_ARG
// the SDK cannot read. The SDK only reports such a mistake to the error
// handler and samples every trace instead (a ratio it cannot read is 1.0,
// an unknown sampler the default, always on): an operator asking for 1 %
// under a spike with "1%" or "0,01" would get 100 %.
func checkSampler(getenv func(string) string) error {
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	switch name {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
	default:
		return fmt.Errorf("tracing: OTEL_TRACES_SAMPLER=%s is not supported (use always_on, always_off, traceidratio or their parentbased_ forms)", name)
	}
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	if arg == "" {
		return nil // the SDK's default ratio, 1.0
	}
	if v, err := strconv.ParseFloat(arg, 64); err != nil || !(v >= 0 && v <= 1) {
		return fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG=%s is not a ratio from 0 to 1 (e.g. 0.01 for 1 %%)", arg)
	}
	return nil
}
