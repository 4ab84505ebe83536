package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/surgehq/surge/admission"
)

// requestIDHeader is X-Request-ID in the canonical form net/http keys
// headers by, so that reading and writing it index the map directly.
const requestIDHeader = "X-Request-Id"

// maxRequestID bounds a request id taken from a client.
const maxRequestID = 128

// saneRequestID reports whether a client's X-Request-ID can be echoed and
// logged as it is: 1 to 128 characters of [A-Za-z0-9._:-].
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestIDs makes the ids of requests that bring none: a random prefix
// per process and a counter, which costs one small allocation where a
// random id per request would cost a read of the system's randomness.
// They are unique, not secret: an id tells how many requests came before
// it (docs/observability.md).
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *requestIDs) next() string {
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], g.prefix...), g.n.Add(1), 36))
}

// requestInfo holds a request's id for the logs and the echoed header's
// value (header[0] is the id).
//
// On HTTP/1 a connection serves its requests one after another, so one
// requestInfo per connection, put in the connection's context by
// ConnContext, holds the id of the request being served: giving a request
// its id then costs no allocation for the holder and no copy of the
// request (r.WithContext), which on the sold-out path were 2 % of the
// server's CPU (docs/observability.md). On HTTP/2, whose streams share a
// connection, each request gets a context of its own (requestCtx).
type requestInfo struct {
	header [1]string
}

type requestInfoKey struct{}

// ConnContext is the http.Server hook that gives each connection the
// holder of its current request's id.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, &requestInfo{})
}

// requestCtx is the context of a request that cannot use its connection's
// holder: one allocation that is both the context and the holder.
type requestCtx struct {
	context.Context
	info requestInfo
}

func (c *requestCtx) Value(key any) any {
	if key == (requestInfoKey{}) {
		return &c.info
	}
	return c.Context.Value(key)
}

// RequestID returns the id of the request whose context ctx is (or
// derives from), "" outside a request. A context kept past the end of its
// HTTP/1 request (a goroutine it started) reads its connection's current
// request: the id of a later request, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return c.header[0]
	}
	return ""
}

// RequestOptions configure Requests.
type RequestOptions struct {
	// Logger receives the access log (default slog.Default()).
	Logger *slog.Logger
	// AccessLog logs one line per request (method, path, status, bytes,
	// duration, request and trace ids, client address). Off by default: a
	// spike would write a line per purchase.
	AccessLog bool
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client address the access log shows (Protection.TrustedProxies).
	TrustedProxies []netip.Prefix
}

// Requests wraps h, the API or a listener's handler, so that every
// request has an id: the client's X-Request-ID when sane, a new one
// otherwise, echoed in the answer and carried by the request's context
// (RequestID, LogHandler); and logs each request when asked.
func Requests(h http.Handler, opt RequestOptions) *RequestsHandler {
	q := &RequestsHandler{next: h, ids: newRequestIDs()}
	q.Apply(opt)
	return q
}

// RequestsHandler is the handler Requests returns.
type RequestsHandler struct {
	next http.Handler
	opt  atomic.Pointer[RequestOptions]
	ids  *requestIDs
}

// Apply changes the options while the handler serves (SIGHUP turns the
// access log on or off, changes the trusted proxies); a request reads
// them once, at its start.
func (q *RequestsHandler) Apply(opt RequestOptions) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	q.opt.Store(&opt)
}

func (q *RequestsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := q.withRequestID(w, r)
	opt := q.opt.Load()
	if sp := trace.SpanFromContext(r.Context()); sp.IsRecording() {
		// otelhttp's span names the first X-Forwarded-For as the
		// client, whoever sent it: the client is the address the access
		// log and the limits use, forwarded only by a trusted proxy.
		if ip := admission.ClientIP(r, opt.TrustedProxies); ip.IsValid() {
			sp.SetAttributes(attribute.String("client.address", ip.String()))
		}
	}
	if opt.AccessLog {
		q.accessLog(w, in, opt)
	} else {
		q.next.ServeHTTP(w, in)
	}
	// The mux set the route on the copy, if there is one: a wrapper around
	// this one (otelhttp names its span by it) sees it too.
	r.Pattern = in.Pattern
}

// TrustedProxies are the trusted proxies in force (RequestOptions).
func (q *RequestsHandler) TrustedProxies() []netip.Prefix { return q.opt.Load().TrustedProxies }

// withRequestID gives r its id and echoes it. On an HTTP/1 connection that
// has a holder (ConnContext), a sane id from the client costs nothing and
// a generated one its string (TestRequestIDAllocs). Otherwise r is copied
// with a context of its own.
func (q *RequestsHandler) withRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := ""
	if v := r.Header[requestIDHeader]; len(v) == 1 && saneRequestID(v[0]) {
		id = v[0]
	} else {
		id = q.ids.next()
	}
	if r.ProtoMajor == 1 {
		if c, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			c.header[0] = id
			// net/http reads the header (or its copy taken at
			// WriteHeader) before it reads the connection's next
			// request, which reuses c.
			w.Header()[requestIDHeader] = c.header[:]
			return r
		}
	}
	c := &requestCtx{Context: r.Context()}
	c.info.header[0] = id
	w.Header()[requestIDHeader] = c.info.header[:]
	return r.WithContext(c)
}

// LogHandler wraps h so that every record logged with a request's context
// (the *Context methods of slog.Logger) carries the request's id and, when
// the request is traced, its trace id.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }

// accessLog serves r and logs one line about it.
func (q *RequestsHandler) accessLog(w http.ResponseWriter, r *http.Request, opt *RequestOptions) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	// Deferred: a handler that cuts its answer (http.ErrAbortHandler, an
	// export failing after its 200) unwinds through here, and its request
	// gets its line too, saying so.
	aborted := true
	defer func() { q.logAccess(w, r, opt, rec, start, aborted) }()
	q.next.ServeHTTP(rec, r)
	aborted = false
}

// logAccess writes the access log's line of r, served into rec.
func (q *RequestsHandler) logAccess(w http.ResponseWriter, r *http.Request, opt *RequestOptions, rec *recorder, start time.Time, aborted bool) {
	if rec.status == 0 {
		// Nothing written: net/http answers 200 with no body, unless the
		// client is gone (its context ends then, not before the handler
		// returns), whose request was left unanswered (a purchase) and
		// must not read as a success.
		rec.status = http.StatusOK
		if r.Context().Err() != nil {
			rec.status = statusClientGone
		}
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", RequestID(r.Context())),
	}
	if code, ok := grpcStatus(w.Header()); ok {
		attrs = append(attrs, slog.Int("grpc_status", code))
	}
	if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	attrs = append(attrs, slog.String("client", admission.ClientIP(r, opt.TrustedProxies).String()))
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	// Not r's context: LogHandler would add the ids a second time.
	opt.Logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// grpcStatus is the grpc-status a gRPC or gRPC-Web call was answered,
// read from h once the call is served: a trailer, or a header in a
// trailers-only answer. Every such call is HTTP 200, failed or not, so
// the access log shows this beside the status.
func grpcStatus(h http.Header) (int, bool) {
	v := h.Get(http.TrailerPrefix + "Grpc-Status")
	if v == "" {
		v = h.Get("Grpc-Status")
	}
	if v == "" {
		return 0, false
	}
	code, err := strconv.Atoi(v)
	return code, err == nil && code >= 0
}

// statusClientGone is the access log's status of a request whose
// client went away before anything was answered: nginx's 499, which no
// client ever receives.
const statusClientGone = 499

// recorder notes the status and size of an answer for the access log.
// Unwrap lets http.ResponseController reach the connection (flushes of
// event streams and exports, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 { // 1xx answers are not the status
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush keeps the writer a http.Flusher for code that asserts it.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
