package http

import (
	"net/http"

	"github.com/surgehq/surge/metrics"
)

// metricsRoutes serves GET /metrics (Config.Gatherer, Prometheus text
// format) to the admin token only: on the admin listener when there is
// one (the public API then hides it, as every admin endpoint), else on
// the one listener. Prometheus scrapes with an authorization header.
func (s *Server) metricsRoutes() {
	if s.cfg.Gatherer == nil {
		return
	}
	h := metrics.Handler(s.cfg.Gatherer)
	s.adminRoute("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if err := s.auth.admin(r); err != nil {
			unauthenticated(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
	s.adminRoute("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD") // ServeMux serves HEAD with GET
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use GET, HEAD")
	})
}

// Codes http answers itself that surge has no constant for.
const (
	codeUnauthenticated = "unauthenticated"
	codeTooLarge        = "too_large"
)

// meterer is a Service that keeps each sale's series (*engine.Engine
// does, made once per sale).
type meterer interface {
	Meter(saleID string) *metrics.Sale
}

// meter returns the series of sale id's purchases; nil (counting nothing)
// when the Service keeps none.
func (s *Server) meter(id string) *metrics.Sale {
	if s.meterer == nil {
		return nil
	}
	return s.meterer.Meter(id)
}
