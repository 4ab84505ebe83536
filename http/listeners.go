package http

import "net/http"

// Public returns the API as served to the internet when the operator has
// a listener of its own (--admin-addr): the admin-only endpoints answer
// 404 as if they did not exist, and the admin token grants nothing, so a
// leaked token or a mis-routed request cannot reach operator functions
// from outside. The Server itself stays the full API, for the admin
// listener or a single listener. Nothing is checked per request: the
// public API is a second set of routes built once.
func (s *Server) Public() http.Handler {
	p := *s
	auth := *s.auth
	auth.noAdmin = true
	p.auth = &auth
	p.mux = http.NewServeMux()
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
