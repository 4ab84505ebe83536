package surge

import (
	"crypto/rand"
	"encoding/base32"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the public contract.
const (
	MaxIDLen       = 64
	MaxKeyLen      = 128
	MaxNameLen     = 200
	MaxStock       = 1_000_000_000
	MaxHoldSeconds = 7 * 24 * 3600
	DefaultHold    = 900
	// MaxAdmitPerSecond and MaxTicketSeconds bound a waiting room.
	MaxAdmitPerSecond = 1_000_000
	MaxTicketSeconds  = 24 * 3600
	// MaxWaitingRoomSkew bounds how far a waiting room's starts_at may lie
	// from the time the sale is created: its admission schedule counts
	// from starts_at in time.Duration, which overflows past ~292 years.
	MaxWaitingRoomSkew = 100 * 365 * 24 * time.Hour
)

// MaxPriceCents is the highest price_cents: an order's amount, quantity ×
// price_cents, then fits in 64 bits for any quantity a sale may hold (up to
// MaxStock), so it never wraps around to a small sum a payment could match.
const MaxPriceCents = math.MaxInt64 / MaxStock

// ValidID reports whether s matches [A-Za-z0-9_-]{1,64}, the shape of every
// sale, order and user id.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidKey reports whether s is an acceptable Idempotency-Key: 1 to 128
// printable ASCII characters.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// idEncoding is lower-case base32 without padding: ids stay URL- and
// shell-safe and match ValidID.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix followed by 80 random bits; crypto/rand makes ids
// unguessable, so knowing one order id tells nothing about another.
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	return prefix + idEncoding.EncodeToString(b[:])
}

// SaleInput is an operator's request to create a sale; nil fields take
// their defaults.
type SaleInput struct {
	ID           *string
	Name         *string
	Stock        *int64
	PerUserLimit *int64
	PriceCents   *int64
	Currency     *string
	StartsAt     *time.Time
	EndsAt       *time.Time
	HoldSeconds  *int64
	// WaitingRoom, when set, puts buyers in a queue first; every field
	// is required.
	WaitingRoom *WaitingRoom
}

// NewSale validates in and applies the defaults: a generated id, a limit of
// one unit per user, starting now, no end, a 900 s hold.
func NewSale(in SaleInput, now time.Time) (Sale, error) {
	now = now.UTC().Truncate(time.Millisecond)
	s := Sale{
		PerUserLimit: 1,
		Currency:     "USD",
		StartsAt:     now,
		HoldSeconds:  DefaultHold,
		CreatedAt:    now,
	}
	bad := func(format string, args ...any) (Sale, error) {
		return Sale{}, Errorf(CodeInvalid, format, args...)
	}
	var err error
	if in.ID != nil {
		if !ValidID(*in.ID) {
			return bad("id must match [A-Za-z0-9_-]{1,64}")
		}
		s.ID = *in.ID
	} else {
		s.ID = NewID("s_")
	}
	if in.Name == nil {
		return bad("name is required")
	}
	if err := checkName(*in.Name); err != nil {
		return Sale{}, err
	}
	s.Name = *in.Name
	if in.Stock == nil {
		return bad("stock is required")
	}
	if err := checkStock(*in.Stock); err != nil {
		return Sale{}, err
	}
	s.Stock = *in.Stock
	if in.PerUserLimit != nil {
		s.PerUserLimit = *in.PerUserLimit
	}
	if err := checkLimit(s.PerUserLimit, s.Stock); err != nil {
		return Sale{}, err
	}
	if in.PriceCents != nil {
		if *in.PriceCents < 0 || *in.PriceCents > MaxPriceCents {
			return bad("price_cents must be between 0 and %d", MaxPriceCents)
		}
		s.PriceCents = *in.PriceCents
	}
	if in.Currency != nil {
		c := *in.Currency
		if !currencyCode(c, true) {
			return bad("currency must be three upper-case letters A-Z, as an ISO 4217 code is written, such as USD")
		}
		s.Currency = c
	}
	if in.StartsAt != nil {
		if !Representable(*in.StartsAt) {
			return bad("starts_at must lie between years 0001 and 9999 in UTC")
		}
		s.StartsAt = in.StartsAt.UTC().Truncate(time.Millisecond)
	}
	if in.EndsAt != nil {
		if s.EndsAt, err = checkEnd(*in.EndsAt, s.StartsAt); err != nil {
			return Sale{}, err
		}
	}
	if in.HoldSeconds != nil {
		if err := checkHold(*in.HoldSeconds); err != nil {
			return Sale{}, err
		}
		s.HoldSeconds = *in.HoldSeconds
	}
	if wr := in.WaitingRoom; wr != nil {
		if err := wr.Check(); err != nil {
			return Sale{}, err
		}
		if d := s.StartsAt.Sub(now); d > MaxWaitingRoomSkew || d < -MaxWaitingRoomSkew {
			return bad("starts_at of a sale with a waiting room must lie within 100 years of now")
		}
		// A copy: the sale is immutable, whatever the caller does with in.
		c := *wr
		s.WaitingRoom = &c
	}
	return s, nil
}

// Check applies the rules of a waiting room's fields, those of NewSale: a
// store checks them again on the rooms it reads back, since a room outside
// them breaks its queue (an admission rate of zero divides by zero).
func (wr WaitingRoom) Check() error {
	if wr.AdmitPerSecond < 1 || wr.AdmitPerSecond > MaxAdmitPerSecond {
		return Errorf(CodeInvalid, "waiting_room.admit_per_second must be between 1 and %d", MaxAdmitPerSecond)
	}
	if wr.Policy != QueueFIFO && wr.Policy != QueueLottery {
		return Errorf(CodeInvalid, "waiting_room.order must be %q or %q", QueueFIFO, QueueLottery)
	}
	if wr.TicketSeconds < 1 || wr.TicketSeconds > MaxTicketSeconds {
		return Errorf(CodeInvalid, "waiting_room.ticket_seconds must be between 1 and %d", MaxTicketSeconds)
	}
	return nil
}

// The rules of a sale's fields that an operator may change later too
// (NewSale and Sale.Apply share them).

func checkName(name string) error {
	if strings.TrimSpace(name) == "" {
		return Errorf(CodeInvalid, "name is required")
	}
	if len(name) > MaxNameLen || !utf8.ValidString(name) {
		return Errorf(CodeInvalid, "name must be valid UTF-8 of at most %d bytes", MaxNameLen)
	}
	if i := strings.IndexFunc(name, Unshowable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return Errorf(CodeInvalid, "name must not contain control characters, line separators or bidirectional controls (%U at byte %d)", r, i)
	}
	return nil
}

func checkStock(stock int64) error {
	if stock < 1 || stock > MaxStock {
		return Errorf(CodeInvalid, "stock must be between 1 and %d", MaxStock)
	}
	return nil
}

func checkLimit(limit, stock int64) error {
	if limit < 1 || limit > stock {
		return Errorf(CodeInvalid, "per_user_limit must be between 1 and the stock (%d)", stock)
	}
	return nil
}

// checkEnd returns ends as stored (UTC, ms), if it is after starts.
func checkEnd(ends, starts time.Time) (time.Time, error) {
	if !Representable(ends) {
		return time.Time{}, Errorf(CodeInvalid, "ends_at must lie between years 0001 and 9999 in UTC")
	}
	ends = ends.UTC().Truncate(time.Millisecond)
	if !ends.After(starts) {
		return time.Time{}, Errorf(CodeInvalid, "ends_at must be after starts_at")
	}
	return ends, nil
}

func checkHold(seconds int64) error {
	if seconds < 1 || seconds > MaxHoldSeconds {
		return Errorf(CodeInvalid, "hold_seconds must be between 1 and %d", MaxHoldSeconds)
	}
	return nil
}

// Unshowable reports whether r changes how the text around it is shown
// rather than being text: control characters (C0, DEL, C1: NUL, line
// breaks, terminal escapes), the line and paragraph separators, and the
// bidirectional controls (marks, embeddings, overrides, isolates), which
// can make a name read differently from what it is ("Trojan Source").
// Names are one line of plain text; other format characters, such as the
// zero-width joiner inside emoji, stay allowed.
func Unshowable(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// Plain reports whether s is one line of plain text as names are: valid
// UTF-8 without a character Unshowable reports. Text from outside that
// operators are shown (payment and settlement ids) must be plain.
func Plain(s string) bool { return utf8.ValidString(s) && !strings.ContainsFunc(s, Unshowable) }

// Representable reports whether t lies in years 0001-9999 in UTC: it then
// survives a round trip through RFC 3339 text in UTC, the form the API and
// the stores use, and fits google.protobuf.Timestamp, the gRPC API's form,
// which begins with the year 0001 (RFC 3339 allows 0000: a sale starting
// then was stored and answered over HTTP, and broke the gRPC answers of
// every list holding it).
func Representable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// currencyCode reports three ASCII letters, upper-case ones if upper: a
// sale's currency is upper case, a payment provider's may be lower case
// (compared with strings.EqualFold). Three bytes are not enough: "€" is
// three.
func currencyCode(s string, upper bool) bool {
	if len(s) != 3 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !upper {
			c &^= 0x20 // raises an ASCII letter
		}
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// ValidatePurchase checks a purchase against the sale's static rules; the
// stateful rules (stock, limit) are the Store's.
func ValidatePurchase(s *Sale, p Purchase) error {
	if err := checkBuyer(p); err != nil {
		return err
	}
	if p.Quantity < 1 || p.Quantity > s.PerUserLimit {
		return Errorf(CodeInvalid, "quantity must be between 1 and the per-user limit (%d)", s.PerUserLimit)
	}
	return nil
}

// CheckPurchase checks what no change of the sale alters: the buyer's id,
// the key, and a quantity from 1 to MaxStock. Stores check it on every
// batch, as the last guard of their invariants (a quantity below one
// would add stock). They do not check the per-user limit as validation:
// a batch was judged against the sale as it was when its purchases
// arrived, and an operator may have lowered the limit since; a purchase
// above it is then refused alone, limit_reached, and its batch stands.
func CheckPurchase(p Purchase) error {
	if err := checkBuyer(p); err != nil {
		return err
	}
	if p.Quantity < 1 || p.Quantity > MaxStock {
		return Errorf(CodeInvalid, "quantity must be between 1 and %d", MaxStock)
	}
	return nil
}

func checkBuyer(p Purchase) error {
	if !ValidID(p.UserID) {
		return Errorf(CodeInvalid, "user id must match [A-Za-z0-9_-]{1,64}")
	}
	if p.IdempotencyKey != "" && !ValidKey(p.IdempotencyKey) {
		return Errorf(CodeInvalid, "Idempotency-Key must be 1 to 128 printable ASCII characters")
	}
	return nil
}
