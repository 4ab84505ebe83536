package surge

import (
	"context"
	"strings"
	"time"
)

// PaymentType is what a payment provider's event says happened.
type PaymentType string

const (
	PaymentSucceeded PaymentType = "payment.succeeded" // money taken for the order
	PaymentFailed    PaymentType = "payment.failed"    // an attempt failed; no money moved
	RefundSucceeded  PaymentType = "refund.succeeded"  // money given back for the order
	// PaymentManual is the operator's settlement (POST /v1/orders/{id}/pay):
	// it counts as a payment.succeeded of the order's full amount.
	PaymentManual PaymentType = "manual"
)

// PaymentStatus is what Surge made of a payment event; it is recorded
// with the event and decides the webhook's answer, also for a replay.
type PaymentStatus string

const (
	// PaymentPaid: the event paid its reserved order (order → paid).
	PaymentPaid PaymentStatus = "paid"
	// PaymentAmountMismatch: the amount or currency differs from the
	// order's; the order is untouched and the webhook answers 422.
	PaymentAmountMismatch PaymentStatus = "amount_mismatch"
	// PaymentRefundDue: money taken for an order that is no longer
	// reserved (expired, cancelled, or already paid by another payment):
	// the shop owes it back. A refund.succeeded of the order settles it.
	PaymentRefundDue PaymentStatus = "refund_due"
	// PaymentRefunded: a refund_due payment whose refund arrived.
	PaymentRefunded PaymentStatus = "refunded"
	// PaymentFailedStatus: a payment.failed, recorded; nothing changes.
	PaymentFailedStatus PaymentStatus = "failed"
	// PaymentRefund: a refund.succeeded that settled a refund_due
	// payment of its order (Settles names it).
	PaymentRefund PaymentStatus = "refund"
	// PaymentRefundUnexpected: a refund.succeeded with no refund_due
	// payment of that amount to settle (typically a paid order refunded
	// at the provider): recorded, the order stays as it is, and
	// reconciliation reports it.
	PaymentRefundUnexpected PaymentStatus = "refund_unexpected"
)

// PaymentEvent is one event of the payment provider, or the operator's
// manual settlement. ID identifies it: a repeated ID is a replay.
type PaymentEvent struct {
	ID          string
	Type        PaymentType
	OrderID     string
	AmountCents int64
	Currency    string
	Created     time.Time // when the provider says it happened
	Provider    string    // "surge" (the generic webhook), "stripe" or "manual"
	// RefundOf is, for a refund that names the payment it gives back
	// (Stripe's charge names its PaymentIntent, the payment's id), that
	// payment's id, of this Provider: the refund settles that payment
	// only, also when delivered before it. With OrderID empty the store
	// takes that payment's order: Stripe does not copy a Checkout
	// Session's metadata onto its charge, so the refund of a Checkout
	// payment names only its PaymentIntent. Stored with the refund (not
	// read back): it is never the refund, delivered first, of another.
	RefundOf string
}

// Payment is a recorded PaymentEvent and what Surge made of it.
type Payment struct {
	PaymentEvent
	SaleID     string
	Status     PaymentStatus
	RecordedAt time.Time
	// Settles is, for a refund, the id of the refund_due payment it
	// settled; empty otherwise.
	Settles string
}

// PaymentResult answers RecordPayment.
type PaymentResult struct {
	Payment Payment // as first recorded, also for a replay
	Order   Order   // the order as it is after the event
	Replay  bool    // the event id was recorded before: nothing changed
}

// Payments is implemented by stores that record payments. Recording is
// durable before RecordPayment returns, and an order's move to paid is in
// the same transaction as the payment that caused it.
type Payments interface {
	// RecordPayment applies ev at now. An event id already recorded is a
	// replay: the first result, with Replay set, and nothing changes.
	// Otherwise, by type:
	//   - payment.succeeded (and manual): a reserved order whose hold
	//     runs at now and whose amount (quantity × price) and currency
	//     match becomes paid (PaymentPaid); wrong amount or currency:
	//     PaymentAmountMismatch, order untouched; an order no longer
	//     reserved, or past its hold: PaymentRefundDue, order untouched.
	//     A manual payment of an order that is not payable is refused
	//     with ErrNotPayable and recorded nowhere.
	//   - payment.failed: PaymentFailedStatus, order untouched.
	//   - refund.succeeded: the order's oldest refund_due payment of the
	//     same amount and currency becomes PaymentRefunded and the event
	//     PaymentRefund; else the oldest one of that currency still owed
	//     more (its amount less the refunds settling it: a refund in
	//     steps) is settled in part, PaymentRefunded once they add up to
	//     it; without one, PaymentRefundUnexpected. An amount_mismatch
	//     payment is owed back too and settled alike, but keeps its
	//     status. A refund by RefundOf settles that payment only; one
	//     naming only its order settles no payment Created after it (the
	//     provider cannot have given back money it took later), and a
	//     payment takes no such refund Created before it as its own
	//     refund delivered first. The order is untouched either way.
	//
	// ErrOrderNotFound, and nothing recorded, if the order is unknown. A
	// refund by RefundOf naming no payment recorded (it may yet come:
	// providers do not deliver in order) is answered so too, but kept
	// aside, listed nowhere: the payment of that id and provider, when
	// recorded within RefundAheadKept, takes it as its order's refund,
	// delivered first, naming it (settling it as above, else
	// refund_unexpected). One naming an id that is another provider's
	// payment is answered ErrRefundNotKept and kept nowhere: the id is
	// taken, so that provider's payment of it never comes.
	RecordPayment(ctx context.Context, ev PaymentEvent, now time.Time) (PaymentResult, error)
	// Payments streams every recorded payment, oldest first, to fn.
	Payments(ctx context.Context, fn func(Payment) error) error
}

// ErrRefundNotKept answers a refund naming only a payment (RefundOf)
// whose id is another provider's payment: not kept, as one naming a
// payment not recorded yet is, since that provider's payment of the id
// would be a replay of the other's. Its code is order_not_found, as for
// that one; the webhook says which it was.
var ErrRefundNotKept = &Error{Code: CodeOrderNotFound, Message: "the refunded payment's id is another provider's payment; the refund is not kept"}

// RefundAheadKept is how long a refund naming only a payment not recorded
// yet is kept for that payment (Payments.RecordPayment). Stripe retries an
// event for up to 3 days and keeps it 30, in which it can be sent again:
// a payment not recorded 30 days after its refund never comes (the refund
// was another of the account's charges', or a test event). Past that the
// payment does not take it, and the stores drop it.
const RefundAheadKept = 30 * 24 * time.Hour

// RefundsAheadDropped bounds how many refunds kept past RefundAheadKept
// the keeping of one drops: the work of one webhook stays small, and as
// each keeps one and drops up to this many, the old ones still go.
const RefundsAheadDropped = 1000

// CodeAmountMismatch: a payment whose amount or currency is not the
// order's (quantity × price_cents, the sale's currency).
const CodeAmountMismatch Code = "amount_mismatch"

// manualPrefix begins the id of every manual payment, one per order (an
// order is paid at most once). A provider's event may not use it: a
// repeated id is a replay, and an event under an order's manual id would
// turn the operator's settlement of that order into a replay of it.
const manualPrefix = "manual_"

// ManualPayment is the operator's settlement of an order (POST
// /v1/orders/{id}/pay) as the stores record it: a manual payment of the
// order's full amount.
func ManualPayment(orderID string, now time.Time) PaymentEvent {
	return PaymentEvent{ID: manualPrefix + orderID, Type: PaymentManual, OrderID: orderID, Created: now, Provider: "manual"}
}

// CheckPaymentEvent validates an event's fields (not its effect). A
// manual one takes the order's amount from the store, so has none yet.
func CheckPaymentEvent(ev PaymentEvent) error {
	switch {
	case ev.ID == "" || len(ev.ID) > 255:
		return Errorf(CodeInvalid, "id must be 1 to 255 characters")
	case !Plain(ev.ID):
		// It is shown to operators (the payments list, surge reconcile's
		// table): one line of plain text, as a sale's name.
		return Errorf(CodeInvalid, "id must be valid UTF-8 without control characters, line separators or bidirectional controls")
	case strings.TrimSpace(ev.ID) != ev.ID:
		// A settlement file's ids are read trimmed (surge reconcile): an
		// id with spaces around it could never be matched there.
		return Errorf(CodeInvalid, "id must not begin or end with white space")
	case ev.Type != PaymentManual && strings.HasPrefix(ev.ID, manualPrefix):
		return Errorf(CodeInvalid, "id must not begin with %q: Surge gives that prefix to the operator's settlements", manualPrefix)
	case !ValidID(ev.OrderID) && (ev.OrderID != "" || ev.Type != RefundSucceeded || ev.RefundOf == ""):
		// A refund may name the payment it gives back instead (RefundOf).
		return Errorf(CodeInvalid, "order_id must be an order id")
	case ev.RefundOf != "" && (len(ev.RefundOf) > 255 || !Plain(ev.RefundOf) || strings.TrimSpace(ev.RefundOf) != ev.RefundOf):
		// A payment's id as the checks above have it: no store holds
		// another, and PostgreSQL refuses a NUL in the lookup itself.
		return Errorf(CodeInvalid, "the refunded payment's id must be 1 to 255 characters of plain text")
	case !Representable(ev.Created):
		// Stored and answered as RFC 3339 text: a time outside years
		// 0001-9999 (milliseconds sent as seconds) could not be read back,
		// and the event's replays and the payments list would fail.
		return Errorf(CodeInvalid, "created must be Unix seconds of a time in years 0001 to 9999")
	case ev.Type == PaymentManual:
		return nil
	case ev.AmountCents < 0:
		return Errorf(CodeInvalid, "amount_cents must not be negative")
	case !currencyCode(ev.Currency, false):
		return Errorf(CodeInvalid, "currency must be a three-letter ISO 4217 code")
	}
	switch ev.Type {
	case PaymentSucceeded, PaymentFailed, RefundSucceeded, PaymentManual:
		return nil
	}
	return Errorf(CodeInvalid, "type must be one of payment.succeeded, payment.failed, refund.succeeded")
}

// Due is what an order costs: quantity × the sale's price, in its currency.
func Due(s *Sale, o *Order) (cents int64, currency string) {
	return o.Quantity * s.PriceCents, s.Currency
}

// EarlyRefund is a refund of an order recorded refund_unexpected before a
// payment of that order came: perhaps that payment's, delivered first
// (providers do not deliver in order).
type EarlyRefund struct {
	ID          string
	AmountCents int64
	Named       bool // it names the payment (RefundOf), not only the order
}

// SettleEarly is the rule, shared by every store, of the refunds
// delivered before a payment owed back (refund_due or amount_mismatch) of
// owed: early are the order's refund_unexpected refunds in the payment's
// currency that may be its own, oldest first (those naming it, and those
// naming only the order made no earlier than it). It returns those that
// settle it and what it is still owed after them. The refunds naming it
// are its own: each settles it as far as it is still owed. Of the others
// the oldest of exactly what it is still owed settles that alone, as a
// refund delivered after it would; else the oldest that fit what is still
// owed settle it in steps (a refund in steps, delivered first).
func SettleEarly(owed int64, early []EarlyRefund) (settle []string, rest int64) {
	// What a refund may settle: no more than is still owed, and a refund
	// of nothing only a payment of nothing (a free order's, too late).
	fits := func(cents int64) bool { return cents > 0 && cents <= owed || cents == owed && len(settle) == 0 }
	take := func(r EarlyRefund) { settle, owed = append(settle, r.ID), owed-r.AmountCents }
	for _, r := range early {
		if r.Named && fits(r.AmountCents) {
			take(r)
		}
	}
	for _, r := range early {
		if !r.Named && r.AmountCents == owed && fits(r.AmountCents) {
			take(r)
			return settle, owed
		}
	}
	for _, r := range early {
		if !r.Named && fits(r.AmountCents) {
			take(r)
		}
	}
	return settle, owed
}

// Decide is the rule of a payment.succeeded (or manual) event for an
// order, shared by every store: payable says the order is reserved and
// its hold runs at the event's time. It returns the payment's status.
func Decide(ev PaymentEvent, s *Sale, o *Order, payable bool) PaymentStatus {
	if !payable {
		return PaymentRefundDue
	}
	cents, cur := Due(s, o)
	if ev.AmountCents != cents || !strings.EqualFold(ev.Currency, cur) {
		return PaymentAmountMismatch
	}
	return PaymentPaid
}
