package client_test

import (
	"errors"
	"github.com/surgehq/surge/api"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/surgehq/surge/client"
)

// A redirect to another origin (a misconfigured or hostile proxy in front
// of Surge, or a hijacked route) must not carry the caller's credentials
// there: not the admin or buyer bearer token (Go's http.Client keeps
// Authorization when only the scheme or the port changes, so an https
// server redirecting to plain http on another port gets the token in
// clear), and not the waiting-room ticket, "the only credential" of a
// place, nor the buyer's X-User-ID. The client stops at the redirect and
// returns an error instead.
func TestRedirectKeepsCredentials(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{} // header → value the other origin received
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, h := range []string{"Authorization", "Waiting-Room-Ticket", "X-User-Id"} {
			if v := r.Header.Get(h); v != "" {
				got[h] = v
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"s","sale_id":"s","status":"admitted","ticket":"t"}`))
	}))
	defer other.Close()
	// The API, over TLS, redirects everything to plain http on another
	// port (same host name: 127.0.0.1).
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer api.Close()

	c := client.New(api.URL, "the-admin-token")
	c.HTTP = api.Client()
	c.Retry.MaxAttempts = 1
	ctx := t.Context()
	_, errSale := c.Sale(ctx, "s")
	_, errPay := c.PayOrder(ctx, "o")
	_, errQueue := c.QueueStatus(ctx, "s", "the-secret-ticket")
	_, errOrder := c.AsUser("ann").Order(ctx, "o")

	mu.Lock()
	defer mu.Unlock()
	for h, v := range got {
		t.Errorf("%s %q sent to %s after a redirect from %s; want credentials kept to the server's origin",
			h, v, other.URL, api.URL)
	}
	for name, err := range map[string]error{"PayOrder": errPay, "QueueStatus": errQueue, "Order": errOrder} {
		if err == nil || !strings.Contains(err.Error(), other.URL) {
			t.Errorf("%s redirected to another origin: err %v, want an error naming %s", name, err, other.URL)
		}
	}
	_ = errSale
}

// A success answer is read within a bound far above the largest the API
// sends (a page of 1000 sales is under 2 MiB): a server or proxy sending
// an endless body must not make the client buffer all of it, and the
// error says the answer was too large.
func TestAnswerBodyBounded(t *testing.T) {
	const size = 128 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"s","name":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the client left
			}
		}
		w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := client.New(srv.URL, "").Sale(t.Context(), "s")
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 100<<20 || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a %d MiB answer: the client allocated %d MiB, err %.200v; want a bounded read and an error saying the answer is too large",
			size>>20, alloc>>20, err)
	}
}

// A proxy's error page (HTML, often tens of KiB with its styles) is not
// the API's error: the client's error keeps the status and the start of
// the page, not the whole page, which the command line would print.
func TestProxyErrorPageClipped(t *testing.T) {
	page := "<html><head><title>502 Bad Gateway</title><style>" + strings.Repeat("body{color:#333}", 2000) + "</style></head></html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte(page))
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, "").Sale(t.Context(), "s")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || !strings.Contains(err.Error(), "502 Bad Gateway") || len(err.Error()) > 1024 {
		n := 0
		if err != nil {
			n = len(err.Error())
		}
		t.Errorf("a %d-byte proxy error page: err of %d bytes (%.120v…); want an *APIError with status 502, the page's start, at most 1 KiB", len(page), n, err)
	}
}

// The order export is a stream without a timeout: one endless order in
// it (a server or proxy sending garbage) must not be buffered whole. The
// client reads an order within a bound and says it was too large.
func TestExportOrderBounded(t *testing.T) {
	const size = 128 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"id":"o1","sale_id":"s"}` + "\n" + `{"id":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the client left
			}
		}
		w.Write([]byte(`"}` + "\n"))
	}))
	defer srv.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := 0
	err := client.New(srv.URL, "admin").Orders(t.Context(), "s", func(api.Order) error { got++; return nil })
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 32<<20 || err == nil || !strings.Contains(err.Error(), "larger than") || got != 1 {
		t.Errorf("an export whose second order is %d MiB: the client allocated %d MiB, handed %d orders, err %.200v; want a bounded read, the first order, and an error saying the order is too large",
			size>>20, alloc>>20, got, err)
	}
}
