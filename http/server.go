// Package http serves Surge's JSON API over net/http: route patterns from
// the standard ServeMux, bearer-token auth for operators, JWT (or, in
// development, a header) for buyers, strict decoding and bounded bodies.
package http

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
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
	// Purchase runs the purchase pipeline (engine.Purchase documents its
	// stages and their order): http only authenticates and decodes.
	Purchase(ctx context.Context, req engine.PurchaseRequest) (surge.Outcome, error)
	Order(ctx context.Context, id string) (surge.Order, error)
	Cancel(ctx context.Context, id string) (surge.Order, error)
	Pay(ctx context.Context, id string) (surge.Order, error)
	Orders(ctx context.Context, saleID string, fn func(surge.Order) error) error
	Ready() bool
}

// Config configures the API.
type Config struct {
	AdminToken string
	JWTSecret  []byte
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
	// MaxQueueStreams bounds the queue event streams open at once; 0 is
	// DefaultMaxQueueStreams.
	MaxQueueStreams int
	// MaxQueueStreamsPerBuyer bounds the streams one buyer holds open on
	// one sale, and MaxQueueStreamsPerAddress those of one client address
	// (an IPv6 /64), so that no one holds them all; beyond, 429. 0 is
	// DefaultMaxQueueStreamsPerBuyer, DefaultMaxQueueStreamsPerAddress.
	MaxQueueStreamsPerBuyer   int
	MaxQueueStreamsPerAddress int
}

// Body limits. A purchase body is tiny; 4 KiB is the contract.
const (
	MaxPurchaseBody = 4 << 10
	MaxSaleBody     = 64 << 10
)

// Server is the API's http.Handler.
type Server struct {
	svc  Service
	auth *authenticator
	log  *slog.Logger
	cfg  Config
	mux  *http.ServeMux

	room *waitroom.Room
	// queues is shared with the Public copy of the server.
	queues *queueState
}

// New builds the API handler.
func New(svc Service, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		svc:  svc,
		auth: newAuthenticatorOptions(authOptions{adminToken: cfg.AdminToken, userHeader: cfg.InsecureUserHeader, jwtSecret: cfg.JWTSecret, buyer: cfg.BuyerAuth}),
		log:  cfg.Logger,
		cfg:  cfg,
		mux:  http.NewServeMux(),
		room: cfg.WaitingRoom,
	}
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
	// The mux answers unknown paths and wrong methods in plain text; these
	// fallbacks keep every answer in the JSON error shape.
	for path, allow := range map[string]string{
		"/v1/sales":                   "GET, POST",
		"/v1/sales/{id}":              "GET",
		"/v1/sales/{id}/orders":       "GET",
		"/v1/sales/{id}/archive":      "POST",
		"/v1/sales/{id}/purchases":    "POST",
		"/v1/sales/{id}/queue":        "GET, POST",
		"/v1/sales/{id}/queue/events": "GET",
		"/v1/orders/{id}":             "GET",
		"/v1/orders/{id}/cancel":      "POST",
		"/v1/orders/{id}/pay":         "POST",
		"/healthz":                    "GET",
		"/readyz":                     "GET",
	} {
		m.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
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
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	if !edge(w, r) {
		return
	}
	if p := r.URL.Path; p != "/healthz" && p != "/readyz" && !s.allowIP(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

func unauthenticated(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="surge"`)
	writeError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
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
	writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body must be at most %d bytes", limit))
}

// readBody reads at most limit bytes; it answers 413 itself when the body
// is larger and reports false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
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

func parseTimeField(name string, v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	// Times are answered and stored in UTC: an offset that moves the
	// instant out of years 0000-9999 would not be RFC 3339 there (and the
	// store could not read it back).
	if y := t.UTC().Year(); err != nil || y < 0 || y > 9999 {
		return nil, fmt.Errorf("%s must be an RFC 3339 time such as 2026-11-23T10:00:00Z", name)
	}
	return &t, nil
}

func (s *Server) createSale(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, err)
		return
	}
	body, ok := readBody(w, r, MaxSaleBody)
	if !ok {
		return
	}
	var req api.NewSale
	if err := decodeStrict(body, &req); err != nil {
		invalid(w, "%v", err)
		return
	}
	in := surge.SaleInput{
		ID: req.ID, Name: req.Name, Stock: req.Stock, PerUserLimit: req.PerUserLimit,
		PriceCents: req.PriceCents, Currency: req.Currency, HoldSeconds: req.HoldSeconds,
	}
	var err error
	if in.StartsAt, err = parseTimeField("starts_at", req.StartsAt); err != nil {
		invalid(w, "%v", err)
		return
	}
	if in.EndsAt, err = parseTimeField("ends_at", req.EndsAt); err != nil {
		invalid(w, "%v", err)
		return
	}
	if in.WaitingRoom, err = waitingRoomInput(req.WaitingRoom); err != nil {
		invalid(w, "%v", err)
		return
	}
	sale, err := s.svc.CreateSale(r.Context(), in)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, toSaleJSON(sale))
}

func (s *Server) getSale(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return
	}
	sale, err := s.svc.Sale(id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSaleJSON(sale))
}

// purchaseBufs holds body buffers of the purchase hot path.
var purchaseBufs = sync.Pool{New: func() any { return new([MaxPurchaseBody + 1]byte) }}

// readPurchaseBody reads and decodes a purchase body into its quantity (1
// when the body is empty or has none). It answers 400 or 413 itself.
func readPurchaseBody(w http.ResponseWriter, r *http.Request) (int64, bool) {
	if r.ContentLength > MaxPurchaseBody {
		tooLarge(w, r, MaxPurchaseBody)
		return 0, false
	}
	buf := purchaseBufs.Get().(*[MaxPurchaseBody + 1]byte)
	defer purchaseBufs.Put(buf)
	// Read to io.EOF by hand: io.ReadFull would also report a body cut
	// short by the client (io.ErrUnexpectedEOF from net/http) as a short
	// read, and a truncated body must not be taken for a complete one.
	n := 0
	for n < len(buf) {
		m, err := r.Body.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			invalid(w, "could not read the body: %v", err)
			return 0, false
		}
	}
	if n > MaxPurchaseBody {
		tooLarge(w, r, MaxPurchaseBody)
		return 0, false
	}
	body := buf[:n]
	if q, ok := quickQuantity(body); ok {
		return q, true
	}
	// Only JSON whitespace is no body; anything else must parse.
	if skipSpace(body, 0) == len(body) {
		return 1, true
	}
	q, err := decodePurchase(body)
	if err != nil {
		invalid(w, "%v", err)
		return 0, false
	}
	return q, true
}

// quickQuantity recognises the one body nearly every client sends,
// {"quantity":N} with optional spaces, without the reflection decoder.
// Anything else, valid or not, reports false and goes to decodePurchase,
// which is the authority on what is accepted.
func quickQuantity(b []byte) (int64, bool) {
	i := skipSpace(b, 0)
	const field = `"quantity"`
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	if !bytes.HasPrefix(b[i:], []byte(field)) {
		return 0, false
	}
	i = skipSpace(b, i+len(field))
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	start := i
	var q int64
	for i < len(b) && '0' <= b[i] && b[i] <= '9' && i-start < 18 {
		q = q*10 + int64(b[i]-'0')
		i++
	}
	// No digits, a leading zero (not JSON) or too many digits: defer.
	if i == start || (b[start] == '0' && i-start > 1) || (i < len(b) && '0' <= b[i] && b[i] <= '9') {
		return 0, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '}' {
		return 0, false
	}
	if skipSpace(b, i+1) != len(b) {
		return 0, false
	}
	return q, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodePurchase reads {"quantity": n} strictly; an absent quantity means 1.
func decodePurchase(body []byte) (int64, error) {
	var req struct {
		// Raw, so that null (which v2 decodes as zero) is told apart.
		Quantity jsontext.Value `json:"quantity"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return 0, err
	}
	if req.Quantity == nil {
		return 1, nil
	}
	q, err := strconv.ParseInt(string(req.Quantity), 10, 64)
	if err != nil {
		return 0, errors.New("quantity must be a positive integer")
	}
	return q, nil
}

func (s *Server) purchase(w http.ResponseWriter, r *http.Request) {
	user, err := s.auth.buyer(r)
	if err != nil {
		unauthenticated(w, err)
		return
	}
	saleID, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return
	}
	p := surge.Purchase{UserID: user, Quantity: 1}
	if keys, present := r.Header["Idempotency-Key"]; present {
		if len(keys) != 1 || !surge.ValidKey(keys[0]) {
			invalid(w, "Idempotency-Key must be one header of 1 to 128 printable ASCII characters")
			return
		}
		p.IdempotencyKey = keys[0]
	}
	if r.ContentLength != 0 {
		q, ok := readPurchaseBody(w, r)
		if !ok {
			return
		}
		p.Quantity = q
	}
	// The waiting-room gate and every other admission decision are the
	// engine's: it takes the tickets as sent.
	out, err := s.svc.Purchase(r.Context(), engine.PurchaseRequest{SaleID: saleID, Purchase: p, Tickets: r.Header[TicketHeader]})
	if err != nil {
		if r.Context().Err() != nil {
			return // the client is gone; nobody reads an answer
		}
		s.writeErr(w, r, err)
		return
	}
	if out.Code != surge.CodeReserved {
		writeRaw(w, statusOf(out.Code), rejectionBodies[out.Code])
		return
	}
	h := w.Header()
	if out.Replay {
		h["Idempotent-Replayed"] = []string{"true"}
	}
	h["Location"] = []string{"/v1/orders/" + out.Order.ID}
	writeRaw(w, http.StatusCreated, orderBody(&out.Order))
}

// orderFor fetches an order the caller may see; anyone else gets the same
// 404 as for a missing order, so ids reveal nothing.
func (s *Server) orderFor(w http.ResponseWriter, r *http.Request) (surge.Order, bool) {
	who, err := s.auth.identify(r)
	if err != nil {
		unauthenticated(w, err)
		return surge.Order{}, false
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeOrderNotFound), surge.ErrOrderNotFound.Message)
		return surge.Order{}, false
	}
	o, err := s.svc.Order(r.Context(), id)
	if err == nil && !who.admin && o.UserID != who.user {
		err = surge.ErrOrderNotFound
	}
	if err != nil {
		s.writeErr(w, r, err)
		return surge.Order{}, false
	}
	return o, true
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, ok := s.orderFor(w, r)
	if !ok {
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) {
	o, ok := s.orderFor(w, r)
	if !ok {
		return
	}
	o, err := s.svc.Cancel(r.Context(), o.ID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

// payOrder marks an order paid. Payments proper come with the payments
// integration; until then the operator (or a payment webhook holding the
// admin token) confirms payment here.
func (s *Server) payOrder(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, err)
		return
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeOrderNotFound), surge.ErrOrderNotFound.Message)
		return
	}
	o, err := s.svc.Pay(r.Context(), id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeRaw(w, http.StatusOK, orderBody(&o))
}

// exportOrders streams every order as NDJSON without holding them in
// memory. The write deadline moves forward with progress, so a long export
// is not cut by the server's write timeout but a stalled client still is.
func (s *Server) exportOrders(w http.ResponseWriter, r *http.Request) {
	if err := s.auth.admin(r); err != nil {
		unauthenticated(w, err)
		return
	}
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return
	}
	if _, err := s.svc.Sale(id); err != nil {
		s.writeErr(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	line := make([]byte, 0, 320)
	n := 0
	err := s.svc.Orders(r.Context(), id, func(o surge.Order) error {
		line = append(appendOrder(line[:0], &o), '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
		if n++; n%1024 == 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The status is sent; cutting the stream tells the client the
		// export is incomplete (no terminating chunk).
		s.log.Warn("order export aborted", "sale", id, "orders_sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}
