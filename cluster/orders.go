package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// Cancel implements surge.Store.
func (s *Store) Cancel(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	return s.settle(ctx, orderID, surge.OrderCancelled, surge.NotCancellable, now)
}

// Pay implements surge.Store: the operator's settlement, recorded as a
// manual payment of the order's full amount in the same transaction.
// Paying takes no unit back, so Redis is not involved.
func (s *Store) Pay(ctx context.Context, orderID string, now time.Time) (surge.Order, error) {
	r, err := s.RecordPayment(ctx, surge.ManualPayment(orderID, now), now)
	if err != nil {
		return surge.Order{}, err
	}
	if r.Replay {
		return surge.Order{}, surge.NotPayable(r.Order, now) // paid already, by this very call
	}
	return r.Order, nil
}

// RecordPayment implements surge.Payments in one PostgreSQL transaction
// under the order's row lock (postgres.RecordPayment). No payment gives
// units back (a refund_due payment leaves its ended order as it is), so
// Redis is not involved.
func (s *Store) RecordPayment(ctx context.Context, ev surge.PaymentEvent, now time.Time) (surge.PaymentResult, error) {
	if s.closed.Load() {
		return surge.PaymentResult{}, surge.ErrUnavailable
	}
	var r surge.PaymentResult
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		if now, err = s.holdClock(ctx, now); err != nil {
			return err
		}
		r, err = s.db.RecordPayment(ctx, ev, now)
		return err
	})
	if errors.Is(err, postgres.ErrCommitUnknown) {
		// PostgreSQL's answer to the COMMIT was lost: "failed" would be a
		// lie if it landed (a payment recorded, its order paid).
		return s.paymentLanded(ctx, r.Payment, err)
	}
	if err != nil {
		return surge.PaymentResult{}, unavailable("recording the payment", err)
	}
	return r, nil
}

// errPaymentUnknown answers a payment whose COMMIT's answer was lost and
// whose outcome could not be read either.
var errPaymentUnknown = &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
	Message: "PostgreSQL's answer to recording the payment was lost: it may have been recorded; a retry of the same event gets the recorded answer"}

// paymentLanded answers a payment whose COMMIT's answer was lost (cause):
// as recorded if PostgreSQL holds it, as failed (nothing recorded) if it
// does not, and errPaymentUnknown if that cannot be read. p is the payment
// as it was to be recorded; none when the commit lost was that of a
// refund's lookup of its payment (which may have kept the refund aside).
func (s *Store) paymentLanded(ctx context.Context, p surge.Payment, cause error) (surge.PaymentResult, error) {
	if p.ID == "" {
		return surge.PaymentResult{}, fmt.Errorf("%w: %w", errPaymentUnknown, cause)
	}
	var (
		r      surge.PaymentResult
		landed bool
	)
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		r, landed, err = s.db.PaymentLanded(ctx, p)
		return err
	})
	switch {
	case err != nil:
		return surge.PaymentResult{}, fmt.Errorf("%w: %w (reading it back: %w)", errPaymentUnknown, cause, err)
	case !landed:
		return surge.PaymentResult{}, unavailable("recording the payment", cause)
	}
	s.log.Warn("the answer to a payment's commit was lost, and PostgreSQL holds the payment", "payment", p.ID, "status", r.Payment.Status, "err", cause)
	return r, nil
}

// Payments implements surge.Payments, streaming from PostgreSQL.
func (s *Store) Payments(ctx context.Context, fn func(surge.Payment) error) error {
	if err := s.db.Payments(ctx, fn); err != nil {
		return unavailable("reading the payments", err)
	}
	return nil
}

func (s *Store) settle(ctx context.Context, id string, status surge.OrderStatus, refuse func(surge.Order, time.Time) *surge.Error, now time.Time) (surge.Order, error) {
	if s.closed.Load() {
		return surge.Order{}, surge.ErrUnavailable
	}
	var o surge.Order
	err := s.call(runToEnd(ctx), s.pcb, func(ctx context.Context) (err error) { // its units go back below
		if now, err = s.holdClock(ctx, now); err != nil {
			return err
		}
		o, err = s.db.Settle(ctx, id, status, now)
		return err
	})
	if errors.Is(err, postgres.ErrCommitUnknown) {
		var got []surge.Order
		if got, err = s.landed(ctx, []surge.Order{o}, status, now); err == nil && len(got) == 0 {
			err = errNotLanded
		}
	}
	if errors.Is(err, postgres.ErrNotReserved) {
		return surge.Order{}, refuse(o, now)
	}
	if err != nil {
		return surge.Order{}, unavailable("updating the order", err)
	}
	if !status.Live() {
		s.release(ctx, o.SaleID, []surge.Order{o})
	}
	return o, nil
}

// holdClock is the instant at which a pay or cancel asked at now (the
// caller's reading of this node's clock) judges a hold and is recorded:
// PostgreSQL's clock, the one the leader expires holds by (leadRound).
// Judged on this node's clock, a node running ahead of the others refused
// a hold the leader had not ended (not_payable, and a provider's payment
// taken for late: refund_due), and one running behind took a payment for a
// hold the leader was about to end. A store whose owner ends holds itself
// with its own clock (Config.NoExpiry, Expire) judges them on that clock:
// now.
func (s *Store) holdClock(ctx context.Context, now time.Time) (time.Time, error) {
	if !s.cfg.NoExpiry {
		var err error
		if now, err = s.db.Now(ctx); err != nil {
			return time.Time{}, err
		}
	}
	return now.UTC().Truncate(time.Millisecond), nil
}

// Order implements surge.Store.
func (s *Store) Order(ctx context.Context, id string) (surge.Order, error) {
	var o surge.Order
	err := s.call(ctx, s.pcb, func(ctx context.Context) (err error) {
		o, err = s.db.Order(ctx, id)
		return err
	})
	if err != nil {
		return surge.Order{}, unavailable("reading the order", err)
	}
	return o, nil
}

// Orders implements surge.Store. It streams from PostgreSQL without the
// call timeout: an export of a large sale takes as long as it takes.
func (s *Store) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	if err := s.knownSale(ctx, saleID); err != nil { // archived ones too
		return err
	}
	// No bound on the whole export, but PostgreSQL must keep it going: a
	// row (or the end) within the call timeout of the start and of the
	// previous row, or the export fails (503 before its first order)
	// instead of holding the client for as long as a stall lasts. The
	// time fn takes (the client reading) is not counted.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(s.cfg.CallTimeout, func() { cancel(errExportStalled) })
	defer stall.Stop()
	err := s.db.Orders(ctx, saleID, func(o surge.Order) error {
		stall.Stop()
		err := fn(o)
		stall.Reset(s.cfg.CallTimeout)
		return err
	})
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errExportStalled) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return unavailable("reading the orders", err)
	}
	return nil
}

var errExportStalled = errors.New("PostgreSQL sent no order within the call timeout")
