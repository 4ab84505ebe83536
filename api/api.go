// Package api declares the JSON objects of Surge's HTTP API
// (docs/api.md) once: the server (package http) writes and reads them,
// the Go client (package client, and through it the CLI and the load
// generator) reads and sends them, and the tests of both check answers
// against them.
//
// They are wire shapes, not the domain (the root package surge), and
// differ from it on purpose: times are the exact strings on the wire
// (surge.TimeLayout), so a test compares an answer byte for byte, and the
// optional fields of a request are pointers, so that absent (the server's
// default) and zero (refused) stay apart.
package api

import (
	"encoding/json"
	"time"

	"github.com/surgehq/surge"
)

// FormatTime spells t as the API answers it: surge.TimeLayout, RFC 3339
// in UTC with milliseconds. Requests may send any RFC 3339 time.
func FormatTime(t time.Time) string { return surge.FormatTime(t) }

// AppendTime appends t as FormatTime spells it.
func AppendTime(b []byte, t time.Time) []byte { return surge.AppendTime(b, t) }

// ParseTime reads a time of the API (any RFC 3339 time, and nothing
// else). time.Parse's RFC 3339 layout accepts what RFC 3339 does not
// (go.dev/issue/54580): a one-digit hour, a comma before the fraction, and
// a time-zone offset hour of 24 or minute of 60, which moved an instant by
// up to a day from anything its sender can have meant. Those are refused.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if err := strictRFC3339(s); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// strictRFC3339 checks what time.Parse left unchecked in s, which it
// read with time.RFC3339Nano: the date is "YYYY-MM-DDT" (11 bytes), and
// the offset, unless "Z", is the last 6 bytes, "±hh:mm".
func strictRFC3339(s string) error {
	bad := func(why string) error { return &time.ParseError{Layout: time.RFC3339, Value: s, Message: ": " + why} }
	const date = len("2006-01-02T")
	if len(s) < len("2006-01-02T15:04:05Z") || s[date+2] != ':' {
		return bad("the hour must be two digits")
	}
	if s[date+8] == ',' {
		return bad("the fraction of a second must follow a period")
	}
	if z := s[len(s)-1]; z != 'Z' {
		off := s[len(s)-6:]
		num2 := func(b string) int { return int(b[0]-'0')*10 + int(b[1]-'0') }
		if num2(off[1:3]) > 23 || num2(off[4:6]) > 59 {
			return bad("the time-zone offset must lie within ±23:59")
		}
	}
	return nil
}

// Sale is the sale object.
type Sale struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Stock        int64   `json:"stock"`
	Remaining    int64   `json:"remaining"`
	PerUserLimit int64   `json:"per_user_limit"`
	PriceCents   int64   `json:"price_cents"`
	Currency     string  `json:"currency"`
	StartsAt     string  `json:"starts_at"`
	EndsAt       *string `json:"ends_at"` // null: no end
	HoldSeconds  int64   `json:"hold_seconds"`
	Status       string  `json:"status"` // upcoming, live, sold_out, ended or paused
	// Stale appears (true) only in cluster mode while Redis and
	// PostgreSQL cannot be read: remaining and status are the last known.
	Stale bool `json:"stale,omitempty"`
	// Archived appears (true) only for a sale taken out of service: its
	// figures are final.
	Archived bool `json:"archived,omitempty"`
	// WaitingRoom appears only for a sale that has one, so the answers
	// of other sales are exactly what they were before waiting rooms.
	WaitingRoom *WaitingRoom `json:"waiting_room,omitempty"`
}

// WaitingRoom is the waiting_room of a sale object: buyers are admitted
// AdmitPerSecond a second in Policy's order, and may buy for
// TicketSeconds once admitted.
type WaitingRoom struct {
	AdmitPerSecond int64  `json:"admit_per_second"`
	Policy         string `json:"order"` // "fifo" or "lottery"
	TicketSeconds  int64  `json:"ticket_seconds"`
}

// NewSale is the body of POST /v1/sales. A nil field is absent: the
// server's default, or for Name and Stock an error.
type NewSale struct {
	ID           *string `json:"id,omitempty"`
	Name         *string `json:"name,omitempty"`
	Stock        *int64  `json:"stock,omitempty"`
	PerUserLimit *int64  `json:"per_user_limit,omitempty"`
	PriceCents   *int64  `json:"price_cents,omitempty"`
	Currency     *string `json:"currency,omitempty"`
	StartsAt     *string `json:"starts_at,omitempty"` // RFC 3339
	EndsAt       *string `json:"ends_at,omitempty"`   // RFC 3339
	HoldSeconds  *int64  `json:"hold_seconds,omitempty"`
	// WaitingRoom: absent or null for none.
	WaitingRoom *NewWaitingRoom `json:"waiting_room,omitempty"`
}

// NewWaitingRoom is the waiting_room of POST /v1/sales: WaitingRoom with
// every field required, so a missing one is told from a zero one.
type NewWaitingRoom struct {
	AdmitPerSecond *int64  `json:"admit_per_second,omitempty"`
	Policy         *string `json:"order,omitempty"`
	TicketSeconds  *int64  `json:"ticket_seconds,omitempty"`
}

// SalePatch is the body of PATCH /v1/sales/{id}: a nil field stays as it
// is. The server refuses null for every field but ends_at.
type SalePatch struct {
	Paused       *bool   `json:"paused,omitempty"`
	Name         *string `json:"name,omitempty"`
	Stock        *int64  `json:"stock,omitempty"`
	PerUserLimit *int64  `json:"per_user_limit,omitempty"`
	EndsAt       *EndsAt `json:"ends_at,omitempty"`
	HoldSeconds  *int64  `json:"hold_seconds,omitempty"`
}

// EndsAt is the ends_at of a SalePatch: an RFC 3339 time, or "" for none
// (sent as null: the sale no longer ends).
type EndsAt string

// MarshalJSON sends "" as null.
func (e EndsAt) MarshalJSON() ([]byte, error) {
	if e == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(e))
}

// SalesPage is the body of GET /v1/sales: next_cursor appears only when
// another page follows.
type SalesPage struct {
	Sales      []Sale `json:"sales"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Order is the order object; one line of the NDJSON export.
type Order struct {
	ID             string `json:"id"`
	SaleID         string `json:"sale_id"`
	UserID         string `json:"user_id"`
	Quantity       int64  `json:"quantity"`
	Status         string `json:"status"` // reserved, paid, cancelled or expired
	CreatedAt      string `json:"created_at"`
	ExpiresAt      string `json:"expires_at"`
	IdempotencyKey string `json:"idempotency_key,omitempty"` // absent when the purchase sent none
}

// OrderBody is the answer of a purchase and of the order endpoints.
type OrderBody struct {
	Order Order `json:"order"`
}

// Queue is the queue object: a buyer's place in a sale's waiting room,
// the answer of every queue endpoint and the data of its stream events.
type Queue struct {
	SaleID               string  `json:"sale_id"`
	UserID               string  `json:"user_id"`
	Ticket               string  `json:"ticket"`
	Status               string  `json:"status"`   // waiting, admitted or expired
	Position             *int64  `json:"position"` // null before a lottery's draw
	Admitted             bool    `json:"admitted"`
	EstimatedWaitSeconds int64   `json:"estimated_wait_seconds"`
	AdmittedAt           *string `json:"admitted_at"` // null before a lottery's draw
	AdmittedUntil        *string `json:"admitted_until"`
}

// ErrorBody is every error answer, and the data of a stream's "error"
// event.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is what an error answer says: a stable code (docs/api.md)
// and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
