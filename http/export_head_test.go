package http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
)

// exportCounter is the real engine, counting the order exports it runs.
type exportCounter struct {
	*engine.Engine
	exports atomic.Int32
}

func (c *exportCounter) Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error {
	c.exports.Add(1)
	return c.Engine.Orders(ctx, saleID, fn)
}

// TestExportHEADRunsNoExport: HEAD /v1/sales/{id}/orders ran the whole
// export (every order read from the store, encoded and written) into a
// body net/http then dropped: the work of the largest answer of the API,
// for headers only. HEAD answers the GET's status and headers, from the
// checks that decide them, without running the export.
func TestExportHEADRunsNoExport(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true, noServer: true})
	svc := &exportCounter{Engine: e.eng}
	srv := httptest.NewServer(surgehttp.New(svc, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: quietLog}))
	t.Cleanup(srv.Close)
	e.srv = srv
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	for _, u := range []string{"alice", "bob"} {
		e.buy(t, "s", header("X-User-ID", u))
	}
	get := e.do(t, http.MethodGet, "/v1/sales/s/orders", "", asAdmin())
	if get.status != http.StatusOK || svc.exports.Load() != 1 {
		t.Fatalf("GET: %v after %d exports; want 200 after 1", get, svc.exports.Load())
	}
	head := e.do(t, http.MethodHead, "/v1/sales/s/orders", "", asAdmin())
	if head.status != http.StatusOK {
		t.Errorf("HEAD: %v, want 200 as the GET", head)
	}
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if got, want := head.header.Get(h), get.header.Get(h); got != want {
			t.Errorf("HEAD: %s %q, the GET's is %q", h, got, want)
		}
	}
	if n := svc.exports.Load(); n != 1 {
		t.Errorf("HEAD /v1/sales/s/orders ran the export: %d exports after one GET and one HEAD, want 1", n)
	}
	// The checks still decide its status.
	if r := e.do(t, http.MethodHead, "/v1/sales/nope/orders", "", asAdmin()); r.status != http.StatusNotFound {
		t.Errorf("HEAD of a missing sale: %v, want 404", r)
	}
	if r := e.do(t, http.MethodHead, "/v1/sales/s/orders", ""); r.status != http.StatusUnauthorized {
		t.Errorf("HEAD without the admin token: %v, want 401", r)
	}
}
