package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/payments"
)

// PaymentService is the part of the pipeline the webhook needs;
// *engine.Engine is one. A Service without it serves no webhook.
type PaymentService interface {
	RecordPayment(ctx context.Context, ev surge.PaymentEvent) (surge.PaymentResult, error)
}

// Payments configures POST /v1/payments/webhook; without Secrets the
// endpoint is not served.
type Payments struct {
	Provider string   // payments.Generic (default) or payments.Stripe
	Secrets  []string // HMAC secrets of the signature; several during a rotation
}

// MaxWebhookBody bounds a webhook's body: Stripe's events, with their
// whole objects, are a few kilobytes.
const MaxWebhookBody = 256 << 10

// webhookPath is the payment webhook's path.
const webhookPath = "/v1/payments/webhook"

// codeInvalidSignature answers a webhook whose signature is missing,
// wrong or too old.
const codeInvalidSignature = "invalid_signature"

func (s *Server) paymentRoutes() {
	ps, ok := s.svc.(PaymentService)
	if !ok || len(s.cfg.Payments.Secrets) == 0 {
		return
	}
	s.webhookOn = true
	s.mux.HandleFunc("POST "+webhookPath, func(w http.ResponseWriter, r *http.Request) { s.webhook(w, r, ps) })
	s.mux.HandleFunc(webhookPath, func(w http.ResponseWriter, r *http.Request) {
		if !s.allowIP(w, r) { // only a signed delivery is exempt
			return
		}
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use POST")
	})
}

// webhook takes a payment provider's event: signature first (401), then
// the body (400), then its effect, durable before the answer. A replay
// answers what the first delivery got.
//
// The per-address limit counts only deliveries whose signature fails:
// ServeHTTP leaves the path to this handler.
// A signed one is the provider, authenticated, which sends every buyer's
// payment from a few addresses; refused, it would come back late, after
// the holds it pays for had expired. A caller over its limit still makes
// the server read its body (at most MaxWebhookBody, at the pace it sends)
// and check one HMAC before the 429.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request, ps PaymentService) {
	body, ok := readBody(w, r, MaxWebhookBody)
	if !ok {
		return
	}
	cfg := s.cfg.Payments
	if err := payments.VerifyRequest(r.Header, cfg.Provider, body, cfg.Secrets); err != nil {
		if s.allowIP(w, r) {
			writeError(w, http.StatusUnauthorized, codeInvalidSignature, err.Error())
		}
		return
	}
	var ev surge.PaymentEvent
	if cfg.Provider == payments.Stripe {
		var ignored string
		var err error
		if ev, ignored, err = payments.FromStripe(body); err != nil {
			s.writeErr(w, r, err)
			return
		}
		if ignored != "" {
			writeJSON(w, http.StatusOK, api.IgnoredBody{Ignored: ignored})
			return
		}
	} else {
		var err error
		if ev, err = genericEvent(body); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	res, err := ps.RecordPayment(r.Context(), ev)
	if errors.Is(err, surge.ErrRefundNotKept) {
		writeJSON(w, http.StatusOK, api.IgnoredBody{Ignored: fmt.Sprintf(
			"%s carries no %s metadata and Surge's payment %s is another provider's; not kept: no payment of that id can come",
			ev.ID, payments.OrderKey, ev.RefundOf)})
		return
	}
	if err != nil && ev.OrderID == "" && surge.ErrorCode(err) == surge.CodeOrderNotFound {
		// A refund naming no order, only a payment Surge has not recorded:
		// another of the account's charges, as one without surge_order_id,
		// or one of Surge's payments not delivered yet, which the store
		// keeps it for.
		writeJSON(w, http.StatusOK, api.IgnoredBody{Ignored: fmt.Sprintf(
			"%s carries no %s metadata and Surge has no payment %s; kept for %d days: it refunds that payment if it comes by then",
			ev.ID, payments.OrderKey, ev.RefundOf, surge.RefundAheadKept/(24*time.Hour))})
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	p := res.Payment
	if p.Status == surge.PaymentAmountMismatch {
		writeError(w, http.StatusUnprocessableEntity, string(surge.CodeAmountMismatch), fmt.Sprintf(
			"payment %s of %s is not the amount and currency of order %s; the order is unchanged",
			p.ID, p.FormatAmount(), p.OrderID))
		return
	}
	writeJSON(w, http.StatusOK, api.PaymentBody{Payment: toPaymentJSON(p)})
}

// genericEvent decodes Surge's own event body, every field required; its
// errors are all CodeInvalid.
func genericEvent(body []byte) (surge.PaymentEvent, error) {
	var in api.PaymentEvent
	if err := decodeStrict(body, &in); err != nil {
		return surge.PaymentEvent{}, surge.Errorf(surge.CodeInvalid, "%v", err)
	}
	if in.ID == nil || in.Type == nil || in.OrderID == nil || in.AmountCents == nil || in.Currency == nil || in.Created == nil {
		return surge.PaymentEvent{}, surge.Errorf(surge.CodeInvalid, "id, type, order_id, amount_cents, currency and created are all required")
	}
	ev := surge.PaymentEvent{ID: *in.ID, Type: surge.PaymentType(*in.Type), OrderID: *in.OrderID,
		AmountCents: *in.AmountCents, Currency: *in.Currency, Created: time.Unix(*in.Created, 0).UTC(), Provider: payments.Generic}
	if ev.Type == surge.PaymentManual { // the operator's, through POST /v1/orders/{id}/pay
		return surge.PaymentEvent{}, surge.Errorf(surge.CodeInvalid, "type must be one of payment.succeeded, payment.failed, refund.succeeded")
	}
	return ev, surge.CheckPaymentEvent(ev)
}

func toPaymentJSON(p surge.Payment) api.Payment {
	return api.Payment{ID: p.ID, Type: string(p.Type), OrderID: p.OrderID, SaleID: p.SaleID,
		AmountCents: p.AmountCents, Currency: p.Currency, Status: string(p.Status), Provider: p.Provider,
		Created: api.FormatTime(p.Created), RecordedAt: api.FormatTime(p.RecordedAt), Settles: p.Settles}
}
