package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
)

// TestSaleCreateAfterALostAnswer: surge sale create without --id, whose
// answer was lost (the server created the sale, then a 503: the commit
// wait ran out, or a proxy between gave up), and run again as the
// operator would, made a second sale: the server generated an id for each
// request. The sale must be made once: the command generates the id
// itself and sends it again after a 503, and a sale it finds under that
// id with what it asked for is its own.
func TestSaleCreateAfterALostAnswer(t *testing.T) {
	ctx, admin := cliServer(t)
	target, err := url.Parse(os.Getenv("SURGE_SERVER"))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var lost atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/sales" && lost.CompareAndSwap(false, true) {
			// The server creates the sale; its answer is lost.
			rp.ServeHTTP(httptest.NewRecorder(), r)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"the sale's commit did not finish in time"}}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("SURGE_SERVER", proxy.URL)
	// The operator runs it until it succeeds (at most three times).
	for range 3 {
		code, stdout, stderr := runCLI(ctx, "sale", "create", "--name", "Phone drop", "--stock", "5")
		t.Logf("exit %d: %s%s", code, stdout, stderr)
		if code == 0 {
			break
		}
	}
	sales, err := admin.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sales) != 1 {
		ids := []string{}
		for _, s := range sales {
			ids = append(ids, s.ID)
		}
		t.Errorf("after a create whose answer was lost, run until it succeeded: sales %v; want one", ids)
	}
}
