package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
)

// APIError is an error answer of the API: its status, the stable code
// and message of the error body (docs/api.md), and Retry-After.
//
// It matches the root package's sentinels by code, so
// errors.Is(err, surge.ErrOrderNotFound) holds for a 404 order_not_found,
// and it unwraps to a *surge.Error, so surge.HasCode(err, surge.CodeSoldOut)
// and surge.ErrorCode work on it too.
type APIError struct {
	Status  int
	Code    string // "http_error" when the body was not the API's error shape
	Message string
	// RetryAfter is the answer's Retry-After, 0 when it had none, at
	// most an hour (a longer one is read as an hour).
	RetryAfter time.Duration
	// RequestID is the answer's X-Request-ID, to find it in the server's log.
	RequestID string
	// Attempts is how many times the request was sent: more than 1 when
	// the client retried and then gave up.
	Attempts int
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
	if e.Status == 0 {
		// An error event of a stream answered 200: no status of its own.
		s = e.Code + ": " + e.Message
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (gave up after %d attempts)", e.Attempts)
	}
	return s
}

// Is matches a *surge.Error of the same code: the wire carries the code,
// not which of the server's errors it was.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*surge.Error)
	return ok && string(t.Code) == e.Code
}

// Unwrap is the error as the root package spells it.
func (e *APIError) Unwrap() error {
	return &surge.Error{Code: surge.Code(e.Code), Message: e.Message, RetryAfter: e.RetryAfter}
}

// maxPageQuote bounds what an error keeps of a body that is not the
// API's error (a proxy's page).
const maxPageQuote = 512

// decodeError reads an error answer; it does not close the body.
func decodeError(resp *http.Response) *APIError {
	ae := &APIError{
		Status:     resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
		RequestID:  resp.Header.Get("X-Request-ID"),
	}
	var e api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		// A proxy's page, or a server that is not Surge.
		ae.Code, ae.Message = "http_error", strings.TrimSpace(string(b))
		// Its start says what it is; the rest (styles, scripts) would
		// fill a terminal.
		if len(ae.Message) > maxPageQuote {
			ae.Message = strings.ToValidUTF8(ae.Message[:maxPageQuote], "") + "…"
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return ae
	}
	ae.Code, ae.Message = e.Error.Code, e.Error.Message
	return ae
}

// maxRetryAfter caps a Retry-After, as the server caps its own (and the
// gRPC API's RetryInfo): a longer wait, a proxy's, is no hint a caller
// can use, and read as none it had the refusal retried after the backoff
// alone.
const maxRetryAfter = time.Hour

// retryAfter reads Retry-After: seconds (what Surge sends) or an HTTP
// date (what a proxy may send), at most maxRetryAfter. Anything else is
// no hint.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	// Seconds beyond int64 parse as its largest, with ErrRange.
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(0, time.Until(t)), maxRetryAfter)
	}
	return 0
}
