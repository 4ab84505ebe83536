package client_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/surgehq/surge/client"
)

// A proxy that sends the API's callers to its sign-in page answers a
// probe 200 with HTML, not Surge's {"status":"ready"}. Healthy and Ready
// read no answer, only its status, so they said the server ran and took
// purchases when nothing had reached it: a program waiting for readiness
// before sending buyers went ahead. Every other call says what came back
// (TestHTMLAnswerSaysWhatCameBack); the probes now do too.
func TestProbeAnsweredByAPageIsNotReady(t *testing.T) {
	const page = "<!doctype html><html><title>Sign in to Example SSO</title></html>"
	s := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/login":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write([]byte(page))
			case "/healthz", "/readyz":
				http.Redirect(w, r, "/login", http.StatusFound)
			default:
				h.ServeHTTP(w, r)
			}
		})
	}})
	c := client.New(s.url, "")
	for name, probe := range map[string]func() error{
		"Healthy": func() error { return c.Healthy(t.Context()) },
		"Ready":   func() error { return c.Ready(t.Context()) },
	} {
		if err := probe(); err == nil || !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), "Sign in to Example SSO") {
			t.Errorf("%s answered by a sign-in page: %v; want an error naming text/html and quoting the page", name, err)
		}
	}
}
