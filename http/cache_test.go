package http_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestOrderAnswersAreNotStored: an order's answers carried no
// Cache-Control, so a shared cache or CDN in front of Surge could keep
// one (a heuristically cacheable 404 too) and hand it to another buyer,
// or a stale status to its own. Every answer about an order, and the
// operator's export, must say private, no-store.
func TestOrderAnswersAreNotStored(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	alice := header("X-User-ID", "alice")
	o := e.buy(t, "s", alice)
	for _, c := range []struct {
		name, method, path string
		who                opt
		status             int
	}{
		{"the buyer reads her order", http.MethodGet, "/v1/orders/" + o.ID, alice, http.StatusOK},
		{"the operator reads it", http.MethodGet, "/v1/orders/" + o.ID, asAdmin(), http.StatusOK},
		{"another buyer reads it", http.MethodGet, "/v1/orders/" + o.ID, header("X-User-ID", "bob"), http.StatusNotFound},
		{"no one reads it", http.MethodGet, "/v1/orders/" + o.ID, func(*http.Request) {}, http.StatusUnauthorized},
		{"the buyer reads it by HEAD", http.MethodHead, "/v1/orders/" + o.ID, alice, http.StatusOK},
		{"the operator exports the orders", http.MethodGet, "/v1/sales/s/orders", asAdmin(), http.StatusOK},
		{"the buyer cancels it", http.MethodPost, "/v1/orders/" + o.ID + "/cancel", alice, http.StatusOK},
		{"the buyer reads it cancelled", http.MethodGet, "/v1/orders/" + o.ID, alice, http.StatusOK},
		{"the operator pays it", http.MethodPost, "/v1/orders/" + o.ID + "/pay", asAdmin(), http.StatusConflict},
	} {
		r := e.do(t, c.method, c.path, "", c.who)
		if r.status != c.status {
			t.Errorf("%s: %s %s answered %v, want %d", c.name, c.method, c.path, r, c.status)
		}
		cc := r.header.Get("Cache-Control")
		if !strings.Contains(cc, "no-store") || !strings.Contains(cc, "private") {
			t.Errorf("%s: %s %s answered %d with Cache-Control %q; want private, no-store (a shared cache must not keep it)",
				c.name, c.method, c.path, r.status, cc)
		}
	}
}

// TestSaleReadsAreRevalidated: a sale's answer (remaining, status) changes
// every moment of a flash sale, and carried no Cache-Control, so a cache
// or CDN in front could keep it by heuristic (a 404 before the sale
// exists too: CDNs keep errors for seconds by default) and show buyers a
// sale still "scheduled" after it went live, each edge flipping at its own
// moment. Every sale read must say no-cache: a cache may keep it, but asks
// Surge again before handing it out.
func TestSaleReadsAreRevalidated(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	anyone := func(*http.Request) {}
	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"a sale", http.MethodGet, "/v1/sales/s", http.StatusOK},
		{"a sale by HEAD", http.MethodHead, "/v1/sales/s", http.StatusOK},
		{"a sale not yet created", http.MethodGet, "/v1/sales/later", http.StatusNotFound},
		{"the sales", http.MethodGet, "/v1/sales", http.StatusOK},
	} {
		r := e.do(t, c.method, c.path, "", anyone)
		if r.status != c.status {
			t.Errorf("%s: %s %s answered %v, want %d", c.name, c.method, c.path, r, c.status)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: %s %s answered %d with Cache-Control %q; want no-cache (its state changes every moment)",
				c.name, c.method, c.path, r.status, cc)
		}
	}
	// The purchase's answer is left as it was: none.
	r := e.do(t, http.MethodPost, "/v1/sales/s/purchases", "", header("X-User-ID", "alice"))
	if cc := r.header.Get("Cache-Control"); r.status != http.StatusCreated || cc != "" {
		t.Errorf("purchase: %d, Cache-Control %q; want 201 and none", r.status, cc)
	}
}

// TestQueueErrorsAreNotStored: docs/api.md says queue answers are
// Cache-Control: no-store, but only the queue object carried it: a queue's
// errors (its 404 before the sale exists, heuristically cacheable) had
// none, so a cache or CDN in front could keep the 404 and hand it to every
// buyer polling the queue after the sale was created.
func TestQueueErrorsAreNotStored(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	e.roomSale(t, "drop", "fifo")
	e.createSale(t, `{"id":"plain","name":"P","stock":5}`)
	alice := header("X-User-ID", "alice")
	tk := e.join(t, "drop", "alice", http.StatusCreated).Ticket
	anyone := func(*http.Request) {}
	stream := header("Accept", "text/event-stream")
	for _, c := range []struct {
		name, method, path string
		opts               []opt
		status             int
	}{
		{"join a sale not yet created", http.MethodPost, "/v1/sales/later/queue", []opt{alice}, http.StatusNotFound},
		{"join without a buyer", http.MethodPost, "/v1/sales/drop/queue", []opt{anyone}, http.StatusUnauthorized},
		{"join a sale without a room", http.MethodPost, "/v1/sales/plain/queue", []opt{alice}, http.StatusConflict},
		{"join with a body", http.MethodPost, "/v1/sales/drop/queue", []opt{alice}, http.StatusBadRequest},
		{"read a queue not yet created", http.MethodGet, "/v1/sales/later/queue", []opt{ticketHeader(tk)}, http.StatusNotFound},
		{"read a queue by HEAD", http.MethodHead, "/v1/sales/later/queue", []opt{ticketHeader(tk)}, http.StatusNotFound},
		{"read a queue without a ticket", http.MethodGet, "/v1/sales/drop/queue", []opt{anyone}, http.StatusForbidden},
		{"read a queue with two tickets", http.MethodGet, "/v1/sales/drop/queue", []opt{ticketHeader(tk), ticketHeader(tk)}, http.StatusForbidden},
		{"read a sale without a room", http.MethodGet, "/v1/sales/plain/queue", []opt{ticketHeader(tk)}, http.StatusConflict},
		{"stream a queue not yet created", http.MethodGet, "/v1/sales/later/queue/events", []opt{ticketHeader(tk)}, http.StatusNotFound},
		{"stream it by Accept", http.MethodGet, "/v1/sales/later/queue", []opt{stream, ticketHeader(tk)}, http.StatusNotFound},
		{"stream without a ticket", http.MethodGet, "/v1/sales/drop/queue/events", []opt{anyone}, http.StatusForbidden},
		{"read one's place", http.MethodGet, "/v1/sales/drop/queue", []opt{ticketHeader(tk)}, http.StatusOK},
	} {
		body := ""
		if c.status == http.StatusBadRequest {
			body = `{"x":1}`
		}
		r := e.do(t, c.method, c.path, body, c.opts...)
		if r.status != c.status {
			t.Errorf("%s: %s %s answered %v, want %d", c.name, c.method, c.path, r, c.status)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: %s %s answered %d with Cache-Control %q; want no-store (docs/api.md: queue answers are no-store)",
				c.name, c.method, c.path, r.status, cc)
		}
	}
}
