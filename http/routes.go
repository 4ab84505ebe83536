package http

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/surgehq/surge/engine"
)

// routeMux is the API's ServeMux, remembering the patterns registered on
// it: api/openapi.yaml must describe every route, and its test walks
// Patterns, so that a new endpoint cannot be left out of the spec.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Patterns returns the route patterns of this set of routes as
// registered on net/http's ServeMux ("POST /v1/sales", and the
// method-less fallbacks that answer 405 or 404), in registration order.
func (s *Server) Patterns() []string { return slices.Clone(s.mux.patterns) }

// Caller is who a request acts as: a buyer (User), or the operator.
type Caller struct {
	User  string
	Admin bool
}

// Authenticate resolves the caller of a request with headers h exactly as
// this API's routes do (a buyer JWT, X-User-ID in development, the admin
// token except on the Public API), for the gRPC API.
func (s *Server) Authenticate(ctx context.Context, h http.Header) (Caller, error) {
	// ctx is the call's: a token whose kid the fetched key set lacks waits
	// for the set no longer than the call may.
	id, err := s.auth.identify((&http.Request{Header: h}).WithContext(ctx))
	return Caller{User: id.user, Admin: id.admin}, err
}

// AuthenticateAdmin checks that headers h carry the admin token exactly
// as this API's admin routes do, answering their refusal in their words,
// for the gRPC API; buyer reports a refusal of a buyer (a good buyer
// token, or X-User-ID where it is accepted), not of missing or bad
// credentials.
func (s *Server) AuthenticateAdmin(ctx context.Context, h http.Header) (buyer bool, err error) {
	r := (&http.Request{Header: h}).WithContext(ctx)
	a := s.auth.get()
	switch err = a.admin(r); {
	case err == nil:
		return false, nil
	case errors.Is(err, errBuyerNotAdmin):
		return true, err
	case errors.Is(err, errNoAdminToken):
		// No bearer token: a buyer by X-User-ID, or nobody.
		id, ierr := a.identify(r)
		return ierr == nil && !id.admin, err
	}
	return false, err
}

// AdminHidden reports whether this is the Public copy of a split
// deployment, whose admin-only endpoints answer 404 as if they did not
// exist: the gRPC API hides its admin-only procedures alike.
func (s *Server) AdminHidden() bool { return s.auth.noAdmin }

// EncodeCursor and DecodeCursor are the sales listing's next_cursor, for
// the gRPC API's ListSales: its pages continue the HTTP API's and back.
func EncodeCursor(c engine.SaleCursor, archived bool) string { return encodeCursor(c, archived) }

// DecodeCursor: see EncodeCursor.
func DecodeCursor(s string, archived bool) (engine.SaleCursor, bool) {
	return decodeCursor(s, archived)
}
