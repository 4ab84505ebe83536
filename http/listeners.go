package http

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge/metrics"
)

// Public returns the API as served to the internet when the operator has
// a listener of its own (--admin-addr): the admin-only endpoints answer
// 404 as if they did not exist, and the admin token grants nothing, so a
// leaked token or a mis-routed request cannot reach operator functions
// from outside. The Server itself stays the full API, for the admin
// listener or a single listener. Nothing is checked per request: the
// public API is a second set of routes built once.
func (s *Server) Public() http.Handler {
	p := *s
	p.auth = &liveAuth{noAdmin: true, cur: s.live}
	p.mux = newRouteMux()
	p.routes()
	return &p
}

// Admin returns the full API as served on the operators' own listener
// (--admin-addr, behind Ops): the same routes as the Server's, but limited
// per address in buckets of their own (Protection.AdminIP), so that an
// address's traffic on one listener does not spend its tokens on the
// other, and with its event streams counted apart (slots). The routes are built again, as Public's, since handlers that
// apply the limit themselves (the payment webhook's) are bound to their
// copy.
func (s *Server) Admin() http.Handler {
	p := *s
	p.adminListener = true
	p.mux = newRouteMux()
	p.routes()
	return &p
}

// adminRoute registers an operator-only endpoint; the public API of a
// split deployment hides it.
func (s *Server) adminRoute(pattern string, h http.HandlerFunc) {
	if s.auth.noAdmin {
		h = func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		}
	}
	s.mux.HandleFunc(pattern, h)
}

// Ops serves pprof and /debug/stats (metrics.Stats of g, the registry
// /metrics serves, as JSON) for a private listener (--debug-addr, --admin-addr), each only to the admin token: a
// private address is no authentication, and profiles reveal memory
// contents. The command line is not served at all, since it may hold
// secrets. With api set, every other path goes to it.
func (s *Server) Ops(g prometheus.Gatherer, api http.Handler) http.Handler {
	ops := http.NewServeMux()
	ops.HandleFunc("GET /debug/pprof/", pprof.Index)
	ops.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	ops.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	ops.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol) // go tool pprof posts its addresses
	ops.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	ops.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "the command line is not served")
	})
	// As on the API's listener (the spec's conventions): another method
	// is 405 with Allow, an unknown path 404, both in the JSON error
	// shape, not a profile taken by a DELETE or net/http's plain text.
	// ServeMux serves HEAD wherever it serves GET, so Allow names it.
	// (One pattern for the pprof paths: a method-less one for symbol
	// alone would conflict with GET /debug/pprof/.)
	notAllowed := func(w http.ResponseWriter, r *http.Request) {
		allow := "GET, HEAD"
		if r.URL.Path == "/debug/pprof/symbol" {
			allow = "GET, HEAD, POST"
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
	}
	ops.HandleFunc("/debug/pprof/", notAllowed)
	ops.HandleFunc("/debug/stats", notAllowed)
	ops.HandleFunc("/debug/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	ops.HandleFunc("GET /debug/stats", func(w http.ResponseWriter, r *http.Request) {
		stats, err := metrics.Stats(g)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "gathering metrics failed")
			return
		}
		writeJSON(w, http.StatusOK, stats)
	})
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.auth.admin(r); err != nil {
			unauthenticated(w, r, err)
			return
		}
		ops.ServeHTTP(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("/debug/", guarded)
	if api != nil {
		mux.Handle("/", api)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		})
	}
	// edge first: this mux would redirect unclean paths in HTML.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if edge(w, r) {
			mux.ServeHTTP(w, r)
		}
	})
}
