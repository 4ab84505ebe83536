package engine

import (
	"context"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/metrics"
)

// RecordPayment applies a payment provider's event through the store's
// surge.Payments role, at the engine's clock; an order it paid counts as
// a transition to paid. A store without the role answers unavailable.
func (e *Engine) RecordPayment(ctx context.Context, ev surge.PaymentEvent) (surge.PaymentResult, error) {
	p, ok := e.store.(surge.Payments)
	if !ok {
		return surge.PaymentResult{}, surge.Errorf(surge.CodeUnavailable, "this store records no payments")
	}
	return changeOrder(ctx, e, e.paying, "", func(ctx context.Context) (surge.PaymentResult, error) {
		r, err := p.RecordPayment(ctx, ev, e.cfg.Now())
		if err == nil && !r.Replay && r.Payment.Status == surge.PaymentPaid {
			e.Meter(r.Order.SaleID).Transition(metrics.ToPaid, 1)
		}
		// A storage failure is 503 unavailable, nothing recorded: the
		// provider retries (docs/payments.md), as Cancel and Pay answer.
		return r, storeErr(err)
	})
}
