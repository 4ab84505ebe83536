package rpc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/surgehq/surge"
	surgehttp "github.com/surgehq/surge/http"
)

// CodeHeader carries the Surge code of an error in the answer's metadata
// (a trailer in gRPC), beside the google.rpc.ErrorInfo detail.
const CodeHeader = "Surge-Code"

// ErrorDomain is the domain of the ErrorInfo details: their reason is the
// Surge code.
const ErrorDomain = "surge"

// codeUnauthenticated is the HTTP API's code of missing or wrong
// credentials (package http answers it; surge has no constant).
const codeUnauthenticated = "unauthenticated"

// Codes of the HTTP API that connect-go's own errors answer with, which
// surge has no constant for.
const (
	codeTooLarge         = "too_large"
	codeMethodNotAllowed = "method_not_allowed"
)

// grpcCode maps the HTTP API's codes to gRPC's (docs/api.md#grpc has the
// table). The HTTP status decides where gRPC has an exact equivalent;
// refusals by the state of a sale or an order are FailedPrecondition,
// limits are ResourceExhausted, and retryable refusals Unavailable.
func grpcCode(c string) connect.Code {
	switch surge.Code(c) {
	case surge.CodeInvalid, surge.CodeIdempotencyMismatch:
		return connect.CodeInvalidArgument
	case surge.CodeSaleNotFound, surge.CodeOrderNotFound:
		return connect.CodeNotFound
	case surge.CodeSaleExists:
		return connect.CodeAlreadyExists
	case surge.CodeSoldOut, surge.CodeLimitReached, surge.CodeNotStarted, surge.CodeEnded, surge.CodePaused,
		surge.CodeNotCancellable, surge.CodeNotPayable, surge.CodeNotArchivable, surge.CodeNoWaitingRoom:
		return connect.CodeFailedPrecondition
	case surge.CodeNotAdmitted, surge.CodeInvalidTicket:
		return connect.CodePermissionDenied
	case surge.CodeRateLimited, surge.CodeQueueFull:
		return connect.CodeResourceExhausted
	case surge.CodeOverloaded, surge.CodeUnavailable:
		return connect.CodeUnavailable
	case codeUnauthenticated:
		return connect.CodeUnauthenticated
	}
	return connect.CodeInternal
}

// newError is a connect error carrying Surge's code three ways: the gRPC
// code, an ErrorInfo detail (reason: the code) and the Surge-Code header;
// a RetryInfo detail tells a retryable one's wait.
func newError(code connect.Code, surgeCode, message string, e *surge.Error) *connect.Error {
	ce := connect.NewError(code, errors.New(message))
	if d, err := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: surgeCode, Domain: ErrorDomain}); err == nil {
		ce.AddDetail(d)
	}
	var wait time.Duration
	if e != nil {
		wait = e.RetryAfter
	}
	switch surge.Code(surgeCode) {
	case surge.CodeOverloaded, surge.CodeUnavailable, surge.CodeRateLimited:
		// As the HTTP API's Retry-After: 1 when the refusal names no wait.
		if wait <= 0 {
			wait = time.Second
		}
	}
	if wait > 0 {
		// As Retry-After, at most an hour: a bucket that never refills
		// waits 292 years, no hint a client can use.
		wait = min(wait, surgehttp.MaxRetryAfter)
		if d, err := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
			ce.AddDetail(d)
		}
		// And in Retry-After, as every HTTP API answer with a wait: a
		// Connect unary error is an HTTP 429 or 503, which plain HTTP
		// clients and proxies read without looking into its body (gRPC
		// has it as a trailer, harmless).
		ce.Meta().Set("Retry-After", surgehttp.RetryAfter(wait))
	}
	ce.Meta().Set(CodeHeader, surgeCode)
	return ce
}

// fromSurge is e with its mapped code, its Surge code and message.
func fromSurge(e *surge.Error) *connect.Error {
	return newError(grpcCode(string(e.Code)), string(e.Code), e.Message, e)
}

// toConnect answers err: the caller gone as Canceled, or past its
// deadline as DeadlineExceeded; else a Surge error with its mapped code;
// anything else Internal, its details in the log only.
func (s *Service) toConnect(ctx context.Context, procedure string, err error) error {
	// The call's end first: the engine answers a change or a read that
	// the call's end cut short as a Surge error (unavailable, "timed out
	// waiting for the change to commit"), which blamed the server for
	// the caller's own deadline and told it to retry.
	if ctx.Err() != nil {
		// The caller's own deadline (grpc-timeout, connect-timeout-ms)
		// passed, or the caller went: DEADLINE_EXCEEDED or CANCELED.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
		}
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	if e := (*surge.Error)(nil); errors.As(err, &e) {
		return fromSurge(e)
	}
	s.log.LogAttrs(ctx, slog.LevelError, "rpc failed", slog.String("procedure", procedure), slog.Any("err", err))
	return newError(connect.CodeInternal, "internal", "internal error", nil)
}

// codedWriter gives the errors connect-go answers itself, before a call
// reaches Surge's code (a wrong method or media type, a message too large
// or undecodable), the Surge-Code header Surge's own errors carry. connect-go wraps a codec's error in an
// error of its own, so no detail survives from there: the header is the
// one place left, and ErrorInfo is missing from these (docs/api.md#grpc).
type codedWriter struct {
	http.ResponseWriter
	wrote bool
	// refused is the code given to an error of connect-go's own, "" when
	// the answer is no such error: Purchase never ran and counted it.
	refused string
}

// Unwrap lets http.ResponseController reach the connection.
func (w *codedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *codedWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		if h.Get(CodeHeader) == "" {
			// A Connect unary error has its HTTP status; a gRPC-Web
			// trailers-only one, status 200 and grpc-status in the headers.
			if c := statusCode(status); c != "" {
				h.Set(CodeHeader, c)
				w.refused = c
			} else if c := grpcStatusCode(h.Get("Grpc-Status")); c != "" {
				h.Set(CodeHeader, c)
				w.refused = c
			}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *codedWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *codedWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// finish covers what is sent once the handler returns: a gRPC error's
// trailers, and a gRPC-Web trailers-only answer's headers.
func (w *codedWriter) finish() {
	h := w.Header()
	if c := grpcStatusCode(h.Get(http.TrailerPrefix + "Grpc-Status")); c != "" && h.Get(http.TrailerPrefix+CodeHeader) == "" {
		h.Set(http.TrailerPrefix+CodeHeader, c)
		w.refused = c
	}
	if !w.wrote {
		if c := grpcStatusCode(h.Get("Grpc-Status")); c != "" && h.Get(CodeHeader) == "" {
			h.Set(CodeHeader, c)
			w.refused = c
		}
	}
}

// statusCode is the Surge code of an HTTP status connect-go answers
// itself in the Connect protocol, "" for one it does not.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		// A wrong media type is a malformed request to the HTTP API,
		// which has no 415.
		return string(surge.CodeInvalid)
	case http.StatusTooManyRequests:
		// connect-go's resource_exhausted: a message over the bound.
		return codeTooLarge
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	}
	return ""
}

// grpcStatusCode is the Surge code of a grpc-status connect-go answers
// itself, "" for one it does not (or none).
func grpcStatusCode(status string) string {
	switch status {
	case "3": // INVALID_ARGUMENT
		return string(surge.CodeInvalid)
	case "8": // RESOURCE_EXHAUSTED: a message over the bound
		return codeTooLarge
	}
	return ""
}
