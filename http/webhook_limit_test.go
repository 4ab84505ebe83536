package http_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/payments"
)

// TestWebhookBodyLimit: docs/api.md, "413 too_large (a body over 256 KiB,
// refused before the signature is checked)". A delivery of exactly
// MaxWebhookBody bytes is taken; one byte more, declared or chunked, is
// refused 413 however well signed, and records nothing: its order stays
// reserved.
func TestWebhookBodyLimit(t *testing.T) {
	e := paymentEnv(t, payments.Generic)
	padded := func(body string, size int) string { return body + strings.Repeat(" ", size-len(body)) }
	for _, c := range []struct {
		name   string
		size   int
		opts   []opt
		status int
	}{
		{"at the limit", surgehttp.MaxWebhookBody, nil, http.StatusOK},
		{"a byte over", surgehttp.MaxWebhookBody + 1, nil, http.StatusRequestEntityTooLarge},
		{"a byte over, chunked", surgehttp.MaxWebhookBody + 1, []opt{chunked()}, http.StatusRequestEntityTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := e.buy(t, "s", header(userHeader, "u"+strconv.Itoa(c.size)+strconv.Itoa(len(c.opts))))
			body := padded(hookBody("evt_"+o.ID, "payment.succeeded", o.ID, 12999, "EUR"), c.size)
			r := e.do(t, "POST", hookPath, body, append(c.opts, signed(hookSecret, body))...)
			want := "paid"
			if c.status == http.StatusOK {
				wantStatus(t, r, c.status)
			} else {
				wantError(t, r, c.status, "too_large")
				want = "reserved"
			}
			if st := e.orderStatus(t, o.ID); st != want {
				t.Errorf("order is %s after a webhook of %d bytes answered %d, want %s", st, c.size, r.status, want)
			}
		})
	}
}
