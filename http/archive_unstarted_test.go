package http_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// A sale whose start lies years ahead (a typo'd year) cannot end before
// it starts (its start is fixed), so archiving it is how the operator
// calls it off: 200, out of the listing, purchases 404, also once its
// start comes. A started sale without an end stays not_archivable.
func TestArchiveSaleNotStarted(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"typo","name":"Typo","stock":5,"starts_at":"2062-11-23T10:00:00Z","ends_at":"2062-11-23T11:00:00Z"}`)
	e.createSale(t, `{"id":"never","name":"Never","stock":5,"starts_at":"9999-12-31T23:59:59Z"}`)
	e.createSale(t, `{"id":"soon","name":"Soon","stock":5,"starts_at":"`+epoch.Add(time.Hour).Format(time.RFC3339)+`"}`)

	// Ending it now is refused, and the message says what to do instead.
	r := e.do(t, "PATCH", "/v1/sales/typo", `{"ends_at":"`+epoch.Format(time.RFC3339)+`"}`, asAdmin())
	wantError(t, r, http.StatusBadRequest, string(surge.CodeInvalid))
	if !strings.Contains(string(r.body), "archive it") {
		t.Errorf("refused end says %s, want it to name the archive", r.body)
	}
	for _, id := range []string{"typo", "never"} {
		r := e.do(t, "POST", "/v1/sales/"+id+"/archive", "", asAdmin())
		wantStatus(t, r, http.StatusOK)
		var got struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			Remaining int64  `json:"remaining"`
			Archived  bool   `json:"archived"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || got.ID != id || got.Status != "ended" || got.Remaining != 5 || !got.Archived {
			t.Errorf("archive %s = %s (%v), want ended, 5 left, archived", id, r.body, err)
		}
	}
	if p := e.page(t, url.Values{}); !slices.Equal(p.ids, []string{"soon"}) {
		t.Errorf("live listing %v, want [soon]", p.ids)
	}
	if p := e.page(t, url.Values{"archived": {"true"}}); !slices.Equal(p.ids, []string{"typo", "never"}) {
		t.Errorf("archived listing %v, want [typo never]", p.ids)
	}
	wantError(t, e.do(t, "POST", "/v1/sales/typo/purchases", "", asUser(t, "alice")), http.StatusNotFound, string(surge.CodeSaleNotFound))

	e.clock.Advance(2 * time.Hour) // soon has started, and has no end
	wantError(t, e.do(t, "POST", "/v1/sales/soon/archive", "", asAdmin()), http.StatusConflict, string(surge.CodeNotArchivable))
	e.buy(t, "soon", asUser(t, "alice"))
}
