package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// TestSpecOrderChangesOverloaded: docs/api.md says a cancel, a payment by
// the operator and a payment webhook answer "503 overloaded when 1,024
// cancels (payments) already wait for the store", and the engine does; the
// spec gave those operations a 503 whose code could only be unavailable,
// so a client generated from it, or validating against it, took the
// documented answer for a broken server. The store is stalled for real: a
// connection of the test holds SQLite's write lock, so every change waits
// for it, holding its place, until the 1,024 places of cancels, and the
// 1,024 of payments, are taken.
func TestSpecOrderChangesOverloaded(t *testing.T) {
	raw, _ := readSpec(t)
	c := newChecker(t, raw)

	dir := t.TempDir()
	srv := specServer(t, dir, engine.Config{Logger: quietLog, PurchaseTimeout: 2 * time.Second},
		surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: quietLog,
			Payments: surgehttp.Payments{Secrets: []string{hookSecret}}})

	unlock := func() {} // the write lock's release, once it is taken
	var inflight sync.WaitGroup
	t.Cleanup(func() { // before specServer's: the stalled changes end first
		unlock()
		inflight.Wait()
	})

	do := func(method, path, body string, h http.Header, want int) answer {
		t.Helper()
		return c.do(call{base: srv.URL, method: method, path: path, body: body, header: h, want: want})
	}
	do("POST", "/v1/sales", `{"id":"busy","name":"Busy","stock":5,"price_cents":1000,"currency":"EUR"}`, admin, 201)
	order := mustDecode[api.OrderBody](t, do("POST", "/v1/sales/busy/purchases", "", user("bob"), 201)).Order

	unlock = servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, sqlite.FileName))
	// Fill the 1,024 places of each budget (cancels have one, payments
	// another) with changes that wait for the lock. A change refused at
	// once means every place of its budget is taken.
	change := func(client *http.Client, path string) (int, []byte, error) {
		req, err := http.NewRequest("POST", srv.URL+path, nil)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	waiting := &http.Client{Timeout: time.Minute}
	probe := &http.Client{Timeout: 300 * time.Millisecond}
	for _, path := range []string{"/v1/orders/" + order.ID + "/cancel", "/v1/orders/" + order.ID + "/pay"} {
		for range 1024 {
			inflight.Go(func() { _, _, _ = change(waiting, path) })
		}
		full := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !full; {
			status, body, err := change(probe, path)
			full = err == nil && status == 503 && bytes.Contains(body, []byte(`"overloaded"`))
		}
		if !full {
			t.Fatalf("1,024 changes (POST %s) waiting on a locked store, and still none refused 503 overloaded within 30 s", path)
		}
	}

	// The places stay taken while the lock is held: each operation that
	// changes an order is refused as the docs say, and the answer must
	// follow the spec.
	ev := fmt.Sprintf(`{"id":"evt_busy","type":"payment.succeeded","order_id":%q,"amount_cents":1000,"currency":"EUR","created":1767225600}`, order.ID)
	for _, k := range []call{
		{method: "POST", path: "/v1/orders/" + order.ID + "/cancel", header: admin},
		{method: "POST", path: "/v1/orders/" + order.ID + "/pay", header: admin},
		{method: "POST", path: "/v1/payments/webhook", body: ev, header: signature(ev)},
	} {
		k.base, k.want = srv.URL, 503
		if a := c.do(k); a.errorCode() != "overloaded" {
			t.Errorf("%s %s: HTTP %d %s, want 503 overloaded (1,024 changes of its kind wait for the store)", k.method, k.path, a.status, a.body)
		}
	}
}
