// Package http serves Surge's JSON API over net/http: route patterns from
// the standard ServeMux, bearer-token auth for operators, JWT (or, in
// development, a header) for buyers, strict decoding and bounded bodies.
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/dashboard"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/waitroom"
)

// Service is what the API needs of the pipeline; *engine.Engine is one.
type Service interface {
	CreateSale(ctx context.Context, in surge.SaleInput) (engine.SaleState, error)
	Sale(id string) (engine.SaleState, error)
	// SalesPage and Archive: see engine.Engine (listing reads memory only).
	SalesPage(archived bool, after *engine.SaleCursor, limit int) ([]engine.SaleState, *engine.SaleCursor)
	Archive(ctx context.Context, id string) (engine.SaleState, error)
	// UpdateSale steers a sale in service (engine.Engine.UpdateSale).
	UpdateSale(ctx context.Context, id string, p surge.SalePatch) (engine.SaleState, error)
	// Purchase runs the purchase pipeline (engine.Purchase documents its
	// stages and their order): http only authenticates and decodes.
	Purchase(ctx context.Context, req engine.PurchaseRequest) (surge.Outcome, error)
	Order(ctx context.Context, id string) (surge.Order, error)
	// CancelFor cancels an order for buyer, the caller ("" the operator),
	// within buyer's share of the cancels waiting for the store
	// (engine.Engine.CancelFor).
	CancelFor(ctx context.Context, buyer, id string) (surge.Order, error)
	Pay(ctx context.Context, id string) (surge.Order, error)
	Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error
	Ready() bool
}

// Config configures the API.
type Config struct {
	AdminToken string
	JWTSecret  []byte
	// JWTPreviousSecret, during a rotation of JWTSecret, is the secret it
	// replaced: HS256 tokens signed with it are still accepted, so the
	// rotation logs no buyer out. Ignored without JWTSecret.
	JWTPreviousSecret []byte
	// InsecureUserHeader trusts X-User-ID as the buyer's identity. For
	// development and benchmarks only: anyone can claim to be anyone.
	InsecureUserHeader bool
	Logger             *slog.Logger
	Protection         Protection
	// BuyerAuth adds JWKS (EdDSA, RS256) verification and iss/aud checks
	// to buyer JWTs; the zero value keeps HS256 with JWTSecret only.
	BuyerAuth BuyerAuth
	// WaitingRoom queues and admits the buyers of sales that have a
	// waiting room. nil is an in-memory room whose tickets are signed
	// with a random key: they die with the process (New logs a warning).
	WaitingRoom *waitroom.Room
	// MaxQueueStreams bounds the queue event streams open at once, with
	// the other long-lived streams of StreamSlot (gRPC's WatchSale); 0 is
	// DefaultMaxQueueStreams. MaxQueueStreamsPerAddress bounds those too.
	// The Admin copy counts its streams apart, at the same bounds.
	MaxQueueStreams int
	// MaxQueueStreamsPerBuyer bounds the streams one buyer holds open on
	// one sale, and MaxQueueStreamsPerAddress those of one client address
	// (an IPv6 /64), so that no one holds them all; beyond, 429. 0 is
	// DefaultMaxQueueStreamsPerBuyer, DefaultMaxQueueStreamsPerAddress.
	MaxQueueStreamsPerBuyer   int
	MaxQueueStreamsPerAddress int
	// Payments configures the payment webhook (payments.go).
	Payments Payments
	// Gatherer is what GET /metrics serves (the registry cmd/surge made
	// for package metrics); nil: no /metrics.
	Gatherer prometheus.Gatherer
	// CORSOrigins are the exact origins whose pages may call the API
	// (cors.go; CheckOrigins validates them); none: no CORS headers.
	CORSOrigins []string
	// Mount, when set, is called with each set of routes built (the full
	// API, and the Public and Admin ones of a split deployment): what it returns is
	// served beside them, authenticating as they do through the Server it
	// is given (the gRPC API, package rpc).
	Mount func(*Server) []Mounted
}

// Mounted is a subtree Config.Mount serves beside the routes.
type Mounted struct {
	// Pattern is a ServeMux pattern, such as "/surge.v1.SaleService/".
	Pattern string
	Handler http.Handler
	// Probe marks a health check's subtree, exempt from the per-address
	// limit as /healthz and /readyz are: load balancers probe every node
	// from a few addresses.
	Probe bool
	// Refuse, unless nil, answers a refusal of a request of the subtree
	// made before Handler runs (the per-address limit) in the subtree's
	// own protocol, reporting false for a request it cannot answer so,
	// which gets the API's JSON error: a gRPC client reads no JSON body,
	// and takes an HTTP 429 for UNAVAILABLE.
	Refuse func(w http.ResponseWriter, r *http.Request, err *surge.Error) bool
}

// Body limits. A purchase body is tiny; 4 KiB is the contract.
const (
	MaxPurchaseBody = 4 << 10
	MaxSaleBody     = 64 << 10
)

// Server is the API's http.Handler.
type Server struct {
	svc  Service
	auth *liveAuth
	// live is what Apply changes; shared with the Public copy.
	live *atomic.Pointer[live]
	// checks counts buyer tokens checked in full, across Apply's
	// authenticators (TokenChecks).
	checks *tokenChecks
	log    *slog.Logger
	cfg    Config
	mux    *routeMux

	// meterer is svc when it keeps each sale's series, nil otherwise:
	// asserted once here, not per purchase.
	meterer meterer

	room *waitroom.Room
	// queues is shared with the Public copy of the server.
	queues *queueState
	// dash is the live dashboard (dashboard.go), nil without a Gatherer;
	// shared with the Public copy too.
	dash *dashboard.Dashboard
	// cors is nil without CORSOrigins.
	cors *cors.Cors
	// webhookOn: POST /v1/payments/webhook is served (paymentRoutes).
	webhookOn bool
	// adminListener: this is the Admin copy, limited per address by
	// Protection.AdminIP.
	adminListener bool
	// probes are the patterns of the mounted health checks (Mounted.Probe).
	probes []string
	// refusers are the mounted subtrees that answer refusals in their own
	// protocol (Mounted.Refuse).
	refusers []Mounted
}

// New builds the API handler.
func New(svc Service, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		svc:    svc,
		live:   new(atomic.Pointer[live]),
		checks: new(tokenChecks),
		log:    cfg.Logger,
		cfg:    cfg,
		mux:    newRouteMux(),
		room:   cfg.WaitingRoom,
		cors:   newCORS(cfg.CORSOrigins),
	}
	s.live.Store(newLive(cfg, s.checks, nil))
	s.auth = &liveAuth{cur: s.live}
	s.meterer, _ = svc.(meterer)
	if s.room == nil {
		s.room = defaultRoom(cfg.Logger)
	}
	s.queues = newQueueState(cfg)
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	s.adminRoute("POST /v1/sales", s.createSale)
	m.HandleFunc("GET /v1/sales", s.listSales)
	m.HandleFunc("GET /v1/sales/{id}", s.getSale)
	s.adminRoute("PATCH /v1/sales/{id}", s.updateSale)
	s.adminRoute("GET /v1/sales/{id}/orders", s.exportOrders)
	s.adminRoute("POST /v1/sales/{id}/archive", s.archiveSale)
	m.HandleFunc("POST /v1/sales/{id}/purchases", s.purchase)
	m.HandleFunc("POST /v1/sales/{id}/queue", s.joinQueue)
	m.HandleFunc("GET /v1/sales/{id}/queue", s.queueStatus)
	m.HandleFunc("GET /v1/sales/{id}/queue/events", s.queueEvents)
	m.HandleFunc("GET /v1/orders/{id}", s.getOrder)
	m.HandleFunc("POST /v1/orders/{id}/cancel", s.cancelOrder)
	s.adminRoute("POST /v1/orders/{id}/pay", s.payOrder)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	s.metricsRoutes()
	s.dashboardRoutes()
	s.paymentRoutes()
	s.probes, s.refusers = nil, nil // a copy's (Public, Admin) are its own
	if s.cfg.Mount != nil {
		for _, mt := range s.cfg.Mount(s) {
			m.Handle(mt.Pattern, mt.Handler)
			if mt.Probe {
				s.probes = append(s.probes, mt.Pattern)
			}
			if mt.Refuse != nil {
				s.refusers = append(s.refusers, mt)
			}
			if base := strings.TrimSuffix(mt.Pattern, "/"); base != mt.Pattern && base != "" {
				// The mounted subtree's own name: ServeMux would redirect it
				// there (307, no body); it names no endpoint.
				m.HandleFunc(base, func(w http.ResponseWriter, r *http.Request) {
					writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
				})
			}
		}
	}
	// The mux answers unknown paths and wrong methods in plain text; these
	// fallbacks keep every answer in the JSON error shape. On the Public
	// copy the admin-only methods are hidden (adminRoute answers them 404
	// as if they did not exist), so Allow names only the public ones, and
	// a path with none answers 404 whatever the method. ServeMux serves
	// HEAD wherever it serves GET (the same handler, without the body), so
	// Allow names it beside GET.
	for path, methods := range map[string]struct{ public, admin string }{
		"/v1/sales":                   {"GET, HEAD", "POST"},
		"/v1/sales/{id}":              {"GET, HEAD", "PATCH"},
		"/v1/sales/{id}/orders":       {"", "GET, HEAD"},
		"/v1/sales/{id}/archive":      {"", "POST"},
		"/v1/sales/{id}/purchases":    {"POST", ""},
		"/v1/sales/{id}/queue":        {"GET, HEAD, POST", ""},
		"/v1/sales/{id}/queue/events": {"GET, HEAD", ""},
		"/v1/orders/{id}":             {"GET, HEAD", ""},
		"/v1/orders/{id}/cancel":      {"POST", ""},
		"/v1/orders/{id}/pay":         {"", "POST"},
		"/healthz":                    {"GET, HEAD", ""},
		"/readyz":                     {"GET, HEAD", ""},
	} {
		allow := methods.public
		if !s.auth.noAdmin && methods.admin != "" {
			allow = strings.TrimPrefix(allow+", "+methods.admin, ", ")
		}
		if allow == "" { // an admin-only path on the Public copy
			m.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
			})
			continue
		}
		// Every answer about an order or a place in a queue, errors
		// included, is kept from caches (docs/api.md): a wrong method's too.
		cache := func(http.ResponseWriter) {}
		switch {
		case strings.HasPrefix(path, "/v1/orders/"):
			cache = noStore
		case strings.Contains(path, "/queue"):
			cache = queueNoStore
		}
		m.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			cache(w)
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
		})
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
}

// ServeHTTP routes the request, turning a panic into a logged 500. The
// recover is a last resort: handlers validate input instead of panicking.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	if r.ProtoMajor == 2 {
		trimFieldValues(r.Header)
		if !h2ContentLengthAgrees(r) {
			invalid(w, "Content-Length must be one number of bytes, the length of the body sent")
			return
		}
	}
	if s.cors != nil && !s.applyCORS(w, r) {
		return
	}
	if !edge(w, r) {
		return
	}
	// A payment webhook is limited only once its signature fails
	// (webhook): the provider delivers a spike's payments from a few
	// addresses, and a delivery refused here comes back hours later.
	if p := r.URL.Path; p != "/healthz" && p != "/readyz" && !(s.webhookOn && p == webhookPath) && !s.probe(p) && !s.allowIP(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// refuse answers e, a refusal of r before it is routed: in the protocol
// of the mounted subtree r is for, when it has its own (Mounted.Refuse),
// else in the API's JSON shape.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *surge.Error) {
	for _, mt := range s.refusers {
		if strings.HasPrefix(r.URL.Path, mt.Pattern) && mt.Refuse(w, r, e) {
			return
		}
	}
	s.writeErr(w, r, e)
}

// probe reports whether path is in a mounted health check's subtree.
func (s *Server) probe(path string) bool {
	for _, p := range s.probes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// unauthenticated answers 401 with a Bearer challenge (RFC 9110 §11.6.1),
// naming the error invalid_token when r sent a bearer token that was
// refused (RFC 6750 §3.1), so a client knows to get a new token rather
// than to sign in; the admin token on a buyer's route and a buyer's token
// on an admin route are good tokens of the wrong kind, and a request
// without a token gets no error code. Two Authorization headers are a
// malformed request, invalid_request (§3.1: more than one method of
// sending a token): no token was judged, and invalid_token would have a
// client drop one that may be good, then send the same two again.
func unauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	challenge := `Bearer realm="surge"`
	switch _, sent := bearer(r); {
	case errors.Is(err, errManyAuthorization):
		challenge += `, error="invalid_request"`
	case sent && !errors.Is(err, errAdminNotBuyer) && !errors.Is(err, errBuyerNotAdmin):
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, codeUnauthenticated, err.Error())
}

func invalid(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, string(surge.CodeInvalid), fmt.Sprintf(format, args...))
}

// tooLarge answers 413 to a body over limit. It first reads (a bounded
// part of) the body: a client still sending it then reads the answer
// instead of a connection reset, since closing a socket with unread data
// in it makes the kernel send RST.
func tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	drain(r.Body)
	writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body must be at most %d bytes", limit))
}

// plainBody refuses a body sent with a content coding (Content-Encoding:
// gzip, br, …) and reports whether the request goes on. The API decodes
// none: read as it came, a gzip body was refused as "malformed JSON at
// byte 0: invalid character '\x1f'", and a plain body labelled gzip was
// read as plain, a mislabelled input guessed at. "identity" is no coding.
// A map lookup and nothing else when the header is absent: the purchase
// path calls it.
func plainBody(w http.ResponseWriter, r *http.Request) bool {
	for _, v := range r.Header["Content-Encoding"] {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				if len(c) > 32 {
					c = c[:32] + "…"
				}
				drain(r.Body)
				invalid(w, "request bodies are not accepted with a Content-Encoding (%q): send the JSON uncompressed, without the header", c)
				return false
			}
		}
	}
	return true
}

// readBody reads at most limit bytes; it answers 413 itself when the body
// is larger and reports false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if !plainBody(w, r) {
		return nil, false
	}
	if r.ContentLength > limit {
		tooLarge(w, r, limit)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge(w, r, limit)
		} else {
			invalid(w, "could not read the body: %v", err)
		}
		return nil, false
	}
	return body, true
}

// drainLimit bounds what is read of a body refused as too large, as
// net/http bounds its own drain after a handler.
const drainLimit = 256 << 10

// drain reads and discards up to drainLimit bytes of a body.
func drain(body io.Reader) { _, _ = io.CopyN(io.Discard, body, drainLimit) }

// pathID returns the {id} path value if it is a valid id.
// adminSaleID authorizes an admin request on a sale's path and returns
// the sale's id; false once it has answered 401 or 404.
func (s *Server) adminSaleID(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, r, err)
		return "", false
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
	}
	return id, ok
}

func pathID(r *http.Request) (string, bool) {
	id := r.PathValue("id")
	return id, surge.ValidID(id)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeRaw(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.svc.Ready() {
		why := "shutting down"
		// A Service may say why (draining, its store unavailable).
		if n, ok := s.svc.(interface{ NotReady() string }); ok && n.NotReady() != "" {
			why = n.NotReady()
		}
		writeError(w, http.StatusServiceUnavailable, string(surge.CodeUnavailable), "not ready: "+why)
		return
	}
	writeRaw(w, http.StatusOK, []byte(`{"status":"ready"}`+"\n"))
}
