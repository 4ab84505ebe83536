package surge

import (
	"errors"
	"fmt"
	"time"
)

// Code is the machine-readable reason of an outcome or error. The HTTP API
// sends it as error.code; the set is part of the public contract.
type Code string

const (
	CodeReserved       Code = "reserved" // success, not an error
	CodeSoldOut        Code = "sold_out"
	CodeLimitReached   Code = "limit_reached"
	CodeNotStarted     Code = "not_started"
	CodeEnded          Code = "ended"
	CodeSaleNotFound   Code = "sale_not_found"
	CodeSaleExists     Code = "sale_exists"
	CodeOrderNotFound  Code = "order_not_found"
	CodeNotCancellable Code = "not_cancellable"
	CodeNotPayable     Code = "not_payable"
	CodeInvalid        Code = "invalid_request"
	CodeOverloaded     Code = "overloaded"
	CodeRateLimited    Code = "rate_limited"
	CodeUnavailable    Code = "unavailable"
	// CodeIdempotencyMismatch: an Idempotency-Key reused with a different
	// request (another quantity) than the one it first answered.
	CodeIdempotencyMismatch Code = "idempotency_mismatch"
	// Waiting rooms.
	CodeNotAdmitted   Code = "not_admitted"    // a purchase without a valid, current admission
	CodeInvalidTicket Code = "invalid_ticket"  // a queue read with a missing, forged or foreign ticket
	CodeNoWaitingRoom Code = "no_waiting_room" // a queue endpoint of a sale without one
	CodeQueueFull     Code = "queue_full"      // the sale's queue holds as many buyers as it may
	// CodeNotArchivable: a sale may be archived only once it has ended
	// (or before it starts) and holds no reserved order.
	CodeNotArchivable Code = "not_archivable"
	// Steering a live sale: a paused sale refuses purchases, and its stock
	// may not go below the units its reserved and paid orders hold.
	CodePaused         Code = "paused"
	CodeStockBelowSold Code = "stock_below_sold"
)

// Error is a failure a caller can act on: a Code plus a human message.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when set, is how long the caller should wait before
	// trying again (rate limits, overload); HTTP sends it as Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels compare by identity with errors.Is: many errors share a code
// (a timeout, an outage and a rebuild are all CodeUnavailable), so matching
// on the code is asked for explicitly with HasCode.
var (
	ErrSaleNotFound        = &Error{Code: CodeSaleNotFound, Message: "sale not found"}
	ErrSaleExists          = &Error{Code: CodeSaleExists, Message: "a sale with this id already exists"}
	ErrOrderNotFound       = &Error{Code: CodeOrderNotFound, Message: "order not found"}
	ErrNotCancellable      = &Error{Code: CodeNotCancellable, Message: "only a reserved order can be cancelled"}
	ErrNotPayable          = &Error{Code: CodeNotPayable, Message: "only a reserved order can be paid"}
	ErrOverloaded          = &Error{Code: CodeOverloaded, Message: "the sale's queue is full; retry shortly"}
	ErrUnavailable         = &Error{Code: CodeUnavailable, Message: "the service is shutting down or its storage failed; retry shortly"}
	ErrIdempotencyMismatch = &Error{Code: CodeIdempotencyMismatch, Message: "this Idempotency-Key was first used for a different request; use a new key"}
)

// ErrDependencyDown marks a failure a store expected and reports itself:
// a dependency it already knows to be down (its circuit breaker is open),
// which it logged when it went down, or a sale's live state being rebuilt
// (cluster mode: Redis lost it), which the rebuild logs. Callers log such
// failures below ERROR. Match it with errors.Is; it comes joined to the error that
// carries the code (unavailable).
var ErrDependencyDown = errors.New("dependency known to be down")

// DependencyDown is err marked ErrDependencyDown, with err's own text.
func DependencyDown(err error) error { return marked{err, ErrDependencyDown} }

// marked is err that errors.Is also finds to be mark, with err's own text.
type marked struct{ err, mark error }

func (e marked) Error() string   { return e.err.Error() }
func (e marked) Unwrap() []error { return []error{e.err, e.mark} }

// ErrAdmissionOver marks a waiting room's refusal of a buyer whose
// ticket is genuine (signed, for this sale and this buyer) and was
// admitted, but whose turn to buy has passed. Such a buyer may have
// bought in its turn: the engine answers the replay of a key that
// reserved then instead of the refusal, and refuses anything else as the
// room said. Match it with errors.Is; it comes joined to the not_admitted
// error that carries the code and the message.
var ErrAdmissionOver = errors.New("admission window passed")

// AdmissionOver is err marked ErrAdmissionOver, with err's own text.
func AdmissionOver(err error) error { return marked{err, ErrAdmissionOver} }

// NotCancellable is ErrNotCancellable naming why o, as it stands at now,
// cannot be cancelled. A buyer whose cancel timed out and who retries
// reads that the first cancel took, instead of a bare refusal. Match it
// by code (HasCode), as every refusal.
func NotCancellable(o Order, now time.Time) *Error { return refusal(ErrNotCancellable, o, now) }

// NotPayable is ErrNotPayable naming why o, as it stands at now, cannot
// be paid.
func NotPayable(o Order, now time.Time) *Error { return refusal(ErrNotPayable, o, now) }

// refusal prefixes base's message with o's state, or is base itself when
// o says nothing more (an order the caller could not read).
func refusal(base *Error, o Order, now time.Time) *Error {
	var why string
	switch {
	case o.ID == "":
		return base
	case o.Status == OrderCancelled:
		why = "is already cancelled"
	case o.Status == OrderPaid:
		why = "is already paid"
	case o.Status == OrderExpired, o.Status == OrderReserved && !o.ExpiresAt.After(now):
		why = "expired: its hold ended at " + FormatTime(o.ExpiresAt)
	default:
		return base
	}
	return &Error{Code: base.Code, Message: "order " + o.ID + " " + why + "; " + base.Message}
}

// HasCode reports whether any *Error in err's tree carries code.
func HasCode(err error, code Code) bool {
	switch x := err.(type) {
	case nil:
		return false
	case *Error:
		return x.Code == code
	case interface{ Unwrap() error }:
		return HasCode(x.Unwrap(), code)
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			if HasCode(e, code) {
				return true
			}
		}
	}
	return false
}

// ErrorCode extracts the Code of err, or "" if err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
