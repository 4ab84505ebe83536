package http_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestUpdateSaleEndsNowByTheServersClock: `surge sale end` sent ends_at as
// the operator's clock read it, so a machine whose clock ran ahead of the
// server's left the sale live until then. "ends_at": "now" ends the sale
// at the server's present (here its clock, epoch, years from the test
// machine's), as a time at or before it does.
func TestUpdateSaleEndsNowByTheServersClock(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"s","name":"Phone drop","stock":5}`)
	e.clock.Advance(time.Minute) // it has started
	r := e.do(t, "PATCH", "/v1/sales/s", `{"ends_at":"now"}`, asAdmin())
	wantStatus(t, r, http.StatusOK)
	want := surge.FormatTime(e.clock.Now())
	if got := mustSale(t, r); got.Status != "ended" || got.EndsAt == nil || *got.EndsAt != want {
		t.Fatalf(`PATCH {"ends_at":"now"}: %+v; want status ended, ends_at %s (the server's clock)`, got, want)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/s/purchases", "", asUser(t, "alice")), http.StatusConflict, string(surge.CodeEnded))
	// Run again (an answer lost), it keeps the end.
	e.clock.Advance(time.Minute)
	if got := mustSale(t, e.do(t, "PATCH", "/v1/sales/s", `{"ends_at":"now"}`, asAdmin())); got.EndsAt == nil || *got.EndsAt != want {
		t.Errorf(`PATCH {"ends_at":"now"} again a minute later: ends_at %v; want %s kept`, got.EndsAt, want)
	}
	// A sale yet to start cannot end now, as with a time.
	e.createSale(t, `{"id":"later","name":"Later","stock":5,"starts_at":"2040-01-01T00:00:00Z"}`)
	wantError(t, e.do(t, "PATCH", "/v1/sales/later", `{"ends_at":"now"}`, asAdmin()), http.StatusBadRequest, string(surge.CodeInvalid))
}
