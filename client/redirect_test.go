package client_test

import (
	"fmt"
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

// A proxy that sends the API's callers to its sign-in page (a redirect
// to it, followed, or the page served in place) answers 200 with HTML.
// The client decoded it as JSON and said `decode GET /v1/sales/hats:
// invalid character '<' looking for beginning of value`, naming neither
// the page nor that the answer was not the API's; the error now says
// what came back (status, media type) and quotes its start, as for an
// error status.
func TestHTMLAnswerSaysWhatCameBack(t *testing.T) {
	const page = "<!doctype html><html><title>Sign in to Example SSO</title></html>"
	s := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/login":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write([]byte(page))
			case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/sales/"):
				http.Redirect(w, r, "/login", http.StatusFound)
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/purchases"):
				http.Redirect(w, r, "/login", http.StatusTemporaryRedirect)
			default:
				h.ServeHTTP(w, r)
			}
		})
	}})
	c := client.New(s.url, token)
	c.Retry.MaxAttempts = 1
	createSale(t, c, "hats", 5, 5)
	_, errSale := c.Sale(t.Context(), "hats")
	_, errBuy := c.AsUser("ann").Purchase(t.Context(), "hats", client.PurchaseOptions{})
	errExport := c.Orders(t.Context(), "hats", func(api.Order) error { return nil })
	for name, err := range map[string]error{"Sale": errSale, "Purchase": errBuy, "Orders": errExport} {
		if err == nil || !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), "Sign in to Example SSO") {
			t.Errorf("%s answered by a sign-in page: %v; want an error naming text/html and quoting the page", name, err)
		}
	}
}

// A queue stream answered by a proxy's page (200, HTML) has no event in
// it: WatchQueue read it to its end and said "queue stream ended before
// admission or expiry", as if the server had cut a real stream. The
// error now says what came back, as for any call.
func TestWatchQueueHTMLAnswerSaysWhatCameBack(t *testing.T) {
	const page = "<!doctype html><html><title>Sign in to Example SSO</title></html>"
	s := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/queue/events") {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write([]byte(page))
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	err := client.New(s.url, "").WatchQueue(t.Context(), "hats", "a-ticket", func(api.Queue) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), "Sign in to Example SSO") {
		t.Errorf("queue stream answered by a sign-in page: %v; want an error naming text/html and quoting the page", err)
	}
}

// http.Client does not set an answer's Request; http.Transport does, but
// a RoundTripper of the caller's (a cache, a recorder, a test double)
// may return an answer without it. An HTML answer through one made the
// client panic (nil pointer) building its error, where the page's URL is
// named: the error now names the page without it.
func TestHTMLAnswerWithoutRequestIsAnError(t *testing.T) {
	const page = "<!doctype html><html><title>Sign in to Example SSO</title></html>"
	s := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(page))
		})
	}})
	c := client.New(s.url, token)
	c.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if resp != nil {
			resp.Request = nil // as a caching RoundTripper's stored answer
		}
		return resp, err
	})}
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		_, err = c.Sale(t.Context(), "hats")
	}()
	if err == nil || !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), "Sign in to Example SSO") {
		t.Errorf("HTML answer through a RoundTripper leaving Request nil: %v; want an error naming text/html and quoting the page", err)
	}
}
