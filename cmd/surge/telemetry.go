package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge/admission"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/tracing"
	"github.com/surgehq/surge/version"
)

// telemetry is what a node's parts report to: its metrics registry and
// its tracer provider (tracing: nil when off).
type telemetry struct {
	reg     *prometheus.Registry
	tracing trace.TracerProvider
}

// startTracing builds the tracer provider from the OTEL_* environment and
// --trace-trust-parent.
func startTracing(ctx context.Context, log *slog.Logger, trustParent bool) (*tracing.Provider, error) {
	p, err := tracing.New(ctx, tracing.Options{ServiceVersion: version.Get().Version, Logger: log, TrustParent: trustParent})
	if err != nil {
		return nil, err
	}
	if p.Enabled() {
		log.Info("tracing on: spans are exported over OTLP/HTTP (OTEL_* environment)")
	}
	return p, nil
}

// flushTimeout bounds the export of the spans left at exit.
const flushTimeout = 5 * time.Second

// stopTracing flushes the spans still buffered.
func stopTracing(p *tracing.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("flush traces", "err", err)
	}
}

// observedListener is a listener's request handler, and whether it
// reads the client address through the trusted proxies (the API's does;
// the private admin listener's does not).
type observedListener struct {
	h       *surgehttp.RequestsHandler
	proxies bool
}

// observed wraps a listener's handler: every request gets its id (and,
// with --access-log, a log line); with tracing on, a span too, which
// continues the caller's W3C traceparent. otelhttp wraps only then: it
// costs allocations on every request even with a no-op provider.
// The request handler is kept, for SIGHUP to change its options.
func (s *server) observed(c serveConfig, h http.Handler, tel telemetry, opt surgehttp.RequestOptions, proxies bool) http.Handler {
	opt.Logger, opt.AccessLog = s.log, c.accessLog
	rh := surgehttp.Requests(h, opt)
	s.requests = append(s.requests, observedListener{rh, proxies})
	h = rh
	if tel.tracing == nil {
		return h
	}
	return trustedParents(rh, otelhttp.NewHandler(h, "surge",
		otelhttp.WithTracerProvider(tel.tracing),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics are Prometheus's
		// The route, once the mux matched one ("POST /v1/sales/{id}/purchases"):
		// a name per path would be one per order id.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern
			}
			return spanMethod(r.Method)
		})))
}

// spanMethod names the span of a request no route matched (refused before
// routing) by its method when HTTP defines it, else "HTTP", as
// OpenTelemetry's conventions say: a method is any token a client sends,
// of any length, and a span name per request would grow the trace
// backend's list of operations without bound.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "HTTP"
}

// trustedParents serves traced, the listener's otelhttp handler, marking
// the requests whose traceparent's sampled flag --trace-trust-parent must
// not believe: with --trusted-proxies set (rh's, as the listener reads
// client addresses), the gateway that sets every traceparent is among
// them, and a caller that is not, having reached the server past it, is
// no more believed about sampling than about its address. Without trusted
// proxies every caller is the gateway, as the flag says. Only requests
// that send a traceparent pay for the look.
func trustedParents(rh *surgehttp.RequestsHandler, traced http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, sent := r.Header["Traceparent"]; sent {
			if proxies := rh.TrustedProxies(); len(proxies) > 0 {
				// With no trusted prefix given, ClientIP is the direct peer.
				peer := admission.ClientIP(r, nil)
				if !slices.ContainsFunc(proxies, func(p netip.Prefix) bool { return p.Contains(peer) }) {
					r = r.WithContext(tracing.UntrustedParent(r.Context()))
				}
			}
		}
		traced.ServeHTTP(w, r)
	})
}
