package http

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
)

// appendOrder encodes an order object (api.Order). Purchases are the hot path, so this
// appends to a buffer instead of going through reflection; ids and codes
// are plain ASCII by validation, but strings are still quoted properly
// (byte by byte: strconv.AppendQuote decodes runes and was 1 % of a
// reservation's CPU, and its \x escapes are not JSON).
func appendOrder(b []byte, o *surge.Order) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, o.ID)
	b = append(b, `,"sale_id":`...)
	b = appendJSONString(b, o.SaleID)
	b = append(b, `,"user_id":`...)
	b = appendJSONString(b, o.UserID)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, o.Quantity, 10)
	b = append(b, `,"status":"`...)
	b = append(b, o.Status...)
	b = append(b, `","created_at":"`...)
	b = api.AppendTime(b, o.CreatedAt)
	b = append(b, `","expires_at":"`...)
	b = api.AppendTime(b, o.ExpiresAt)
	b = append(b, '"')
	if o.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = appendJSONString(b, o.IdempotencyKey)
	}
	return append(b, '}')
}

// appendJSONString quotes printable ASCII as JSON.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			if c < 0x20 || c > 0x7e {
				b = append(b, `\u00`...)
				b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

func orderBody(o *surge.Order) []byte {
	b := make([]byte, 0, 320)
	b = append(b, `{"order":`...)
	b = appendOrder(b, o)
	return append(b, "}\n"...)
}

// toSaleJSON is the sale object of s.
func toSaleJSON(s engine.SaleState) api.Sale {
	j := api.Sale{
		ID: s.ID, Name: s.Name, Stock: s.Stock, Remaining: max(s.Remaining, 0),
		PerUserLimit: s.PerUserLimit, PriceCents: s.PriceCents, Currency: s.Currency,
		StartsAt: api.FormatTime(s.StartsAt), HoldSeconds: s.HoldSeconds,
		Status: string(s.Status), Stale: s.Stale, Archived: s.Archived,
	}
	if !s.EndsAt.IsZero() {
		e := api.FormatTime(s.EndsAt)
		j.EndsAt = &e
	}
	if wr := s.WaitingRoom; wr != nil {
		j.WaitingRoom = &api.WaitingRoom{AdmitPerSecond: wr.AdmitPerSecond, Policy: wr.Policy, TicketSeconds: wr.TicketSeconds}
	}
	return j
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "could not encode the response")
		return
	}
	writeRaw(w, status, append(b, '\n'))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var jsonContentType = []string{"application/json"}

func errorJSON(code, message string) []byte {
	b, _ := json.Marshal(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: message}})
	return append(b, '\n')
}

// WriteError answers status with the API's JSON error shape, for
// handlers mounted beside the routes (Config.Mount) that answer outside
// their own protocol, as an unknown path.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeError(w, status, code, message)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	writeRaw(w, status, errorJSON(code, message))
}

// Rejections of purchases are answered from bodies encoded once: the
// sold-out path under a spike must cost next to nothing.
var rejectionBodies = func() map[surge.Code][]byte {
	m := make(map[surge.Code][]byte, len(rejectionMessages))
	for c, msg := range rejectionMessages {
		m[c] = errorJSON(string(c), msg)
	}
	return m
}()

// rejectionMessages are the messages of a purchase's rejections.
var rejectionMessages = map[surge.Code]string{
	surge.CodeSoldOut:      "the sale is sold out: fewer units remain than requested",
	surge.CodeLimitReached: "this purchase would exceed the per-user limit of the sale",
	surge.CodeNotStarted:   "the sale has not started yet",
	surge.CodeEnded:        "the sale has ended",
	surge.CodePaused:       "the sale is paused; it may resume later",
	// 422, not 409: the request itself is wrong, whatever the sale's state.
	surge.CodeIdempotencyMismatch: surge.ErrIdempotencyMismatch.Message,
}

// Rejection is the error a purchase rejected with code c answers, with
// the HTTP API's message (for the gRPC API).
func Rejection(c surge.Code) *surge.Error {
	msg, ok := rejectionMessages[c]
	if !ok {
		msg = string(c)
	}
	return &surge.Error{Code: c, Message: msg}
}

// statusOf maps a domain code to its HTTP status.
func statusOf(c surge.Code) int {
	switch c {
	case surge.CodeSoldOut, surge.CodeLimitReached, surge.CodeNotStarted, surge.CodeEnded,
		surge.CodeSaleExists, surge.CodeNotCancellable, surge.CodeNotPayable, surge.CodeNotArchivable,
		surge.CodePaused, surge.CodeStockBelowSold:
		return http.StatusConflict
	case surge.CodeNoWaitingRoom, surge.CodeQueueFull:
		return http.StatusConflict
	case surge.CodeNotAdmitted, surge.CodeInvalidTicket:
		return http.StatusForbidden
	case surge.CodeSaleNotFound, surge.CodeOrderNotFound:
		return http.StatusNotFound
	case surge.CodeInvalid:
		return http.StatusBadRequest
	case surge.CodeOverloaded, surge.CodeUnavailable:
		return http.StatusServiceUnavailable
	case surge.CodeRateLimited:
		return http.StatusTooManyRequests
	case surge.CodeIdempotencyMismatch, surge.CodeAmountMismatch:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// writeErr answers a domain error; anything else is a 500 whose details
// go to the log, not the client. It returns the code answered.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) string {
	var e *surge.Error
	switch {
	case errors.As(err, &e):
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", RetryAfter(e.RetryAfter))
		}
		writeError(w, statusOf(e.Code), string(e.Code), e.Message)
		return string(e.Code)
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return "internal"
	}
}
