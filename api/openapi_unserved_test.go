package api_test

import (
	"testing"

	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
)

// TestSpecWebhookNotServed: without --payment-webhook-secret the webhook
// is not served (docs/api.md), so its path answers 404 not_found as any
// path without a route; the spec's 404 for it listed only
// order_not_found, so a client generated from the spec, or validating
// against it, took a server without payments for a broken one.
func TestSpecWebhookNotServed(t *testing.T) {
	raw, _ := readSpec(t)
	c := newChecker(t, raw)
	srv := specServer(t, t.TempDir(), engine.Config{Logger: quietLog}, surgehttp.Config{AdminToken: adminToken, Logger: quietLog})
	ev := `{"id":"evt_1","type":"payment.succeeded","order_id":"o_00000000000000000000000000","amount_cents":1000,"currency":"EUR","created":1767225600}`
	a := c.do(call{base: srv.URL, method: "POST", path: "/v1/payments/webhook", body: ev, header: signature(ev), want: 404})
	if got := a.errorCode(); got != "not_found" {
		t.Errorf("HTTP %d %s: code %q, want not_found", a.status, a.body, got)
	}
}
