package http_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	surgehttp "github.com/surgehq/surge/http"
)

// TestAllowNamesEveryMethodServed: a 405's Allow must be true both ways
// (RFC 9110 §10.2.1): every method it names is served on that path, and
// every method served there is named. ServeMux answers HEAD wherever a
// GET pattern is registered (without the body), so Allow left HEAD out of
// every path that serves GET.
func TestAllowNamesEveryMethodServed(t *testing.T) {
	e := newEnv(t, envOptions{insecureUserHeader: true})
	full := surgehttp.New(e.eng, surgehttp.Config{
		AdminToken: adminToken, JWTSecret: jwtSecret, InsecureUserHeader: true, Logger: quietLog,
		WaitingRoom: e.room, Gatherer: prometheus.NewRegistry(),
		Payments: surgehttp.Payments{Secrets: []string{"a-webhook-secret-of-32-bytes!!!!"}},
	})
	e.createSale(t, `{"id":"s","name":"S","stock":5}`)
	o := e.buy(t, "s", header("X-User-ID", "alice"))
	paths := []string{
		"/v1/sales", "/v1/sales/s", "/v1/sales/s/orders", "/v1/sales/s/archive", "/v1/sales/s/purchases",
		"/v1/sales/s/queue", "/v1/sales/s/queue/events", "/v1/orders/" + o.ID, "/v1/orders/" + o.ID + "/cancel",
		"/v1/orders/" + o.ID + "/pay", "/healthz", "/readyz", "/metrics", "/v1/payments/webhook",
		"/dashboard", "/dashboard/login", "/dashboard/events",
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete}
	for _, api := range []struct {
		name string
		h    http.Handler
	}{{"full API", full}, {"public API", full.Public()}} {
		srv := httptest.NewServer(api.h)
		t.Cleanup(srv.Close)
		for _, path := range paths {
			status := map[string]int{}
			for _, m := range methods {
				req, err := http.NewRequest(m, srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-User-ID", "bob")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", m, path, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status[m] = resp.StatusCode
				// The public API hides the admin methods: 404 as if
				// they did not exist, so not served there.
				if resp.StatusCode == http.StatusNotFound && bytes.Contains(b, []byte(`"code":"not_found"`)) {
					status[m] = http.StatusMethodNotAllowed
				}
			}
			// PUT is served nowhere: its 405 (or 404 for a hidden path)
			// tells what Allow says.
			req, _ := http.NewRequest(http.MethodPut, srv.URL+path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				continue
			}
			allow := strings.Split(resp.Header.Get("Allow"), ", ")
			for _, m := range methods {
				served := status[m] != http.StatusMethodNotAllowed // or hidden
				if named := slices.Contains(allow, m); named != served {
					t.Errorf("%s: %s %s answered %d, but Allow is %q: want Allow to name exactly the methods served",
						api.name, m, path, status[m], resp.Header.Get("Allow"))
				}
			}
		}
	}
}
