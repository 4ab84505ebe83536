package client_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// A proxy in front of the API that moved it (here from /api to /) and
// redirects the old paths with 301, 302 or 303: net/http follows those
// with a GET, without the body, so a write sent there became a read of
// the same path, and its answer was taken as the write's. PATCH
// /api/v1/sales/{id} became GET /v1/sales/{id}, and UpdateSale returned
// the sale unchanged, with no error: `surge sale pause` said it paused a
// sale still selling. A write is not followed to another method: the
// error names the redirect and where it points, and nothing is sent
// there; a read follows it as before, and 307/308 (the method and body
// kept) too.
func TestRedirectNeverTurnsAWriteIntoARead(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if p, ok := strings.CutPrefix(r.URL.Path, "/api"); ok {
						http.Redirect(w, r, p, status)
						return
					}
					h.ServeHTTP(w, r)
				})
			}})
			createSale(t, client.New(s.url, token), "hats", 5, 5)
			moved := client.New(s.url+"/api", token)
			moved.Retry.MaxAttempts = 1
			ctx := t.Context()

			got, err := moved.UpdateSale(ctx, "hats", api.SalePatch{Paused: new(true)})
			if err == nil || !strings.Contains(err.Error(), "/v1/sales/hats") {
				t.Errorf("UpdateSale through a %d: %+v, %v; want an error naming where it was redirected", status, got, err)
			}
			if n := s.count("GET /v1/sales/hats"); n != 0 {
				t.Errorf("the PATCH was sent on as %d GET", n)
			}
			if sale, err := client.New(s.url, token).Sale(ctx, "hats"); err != nil || sale.Status != "live" {
				t.Errorf("sale after the refused redirect: %+v, %v; want live, untouched", sale, err)
			}
			// A read follows the redirect: the same method, nothing lost.
			if sale, err := moved.Sale(ctx, "hats"); err != nil || sale.ID != "hats" {
				t.Errorf("Sale through a %d: %+v, %v; want the sale", status, sale, err)
			}
		})
	}
}
