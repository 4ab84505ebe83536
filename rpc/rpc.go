// Package rpc serves Surge's gRPC API, surge.v1.SaleService
// (proto/surge/v1/sale.proto), for internal callers. connect-go serves it
// as gRPC, gRPC-Web and Connect on the HTTP API's own listener (mounted
// through http.Config.Mount), over the same engine, so the guarantees are
// the HTTP API's; callers are authenticated by the http package's own
// code, and errors carry the HTTP API's codes (errors.go).
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/metrics"
)

// Stream timing of WatchSale: how often it looks at the sale (a read of
// the engine's memory), and how long a stream lives before the caller
// calls again (as the HTTP API's event streams).
const (
	DefaultWatchTick = 250 * time.Millisecond
	// DefaultWatchHeartbeat is the HTTP API's event streams' heartbeat.
	DefaultWatchHeartbeat = 15 * time.Second
	// DefaultWatchWriteTimeout bounds each write of a WatchSale stream, as
	// the HTTP API's event streams bound theirs: a client that stops
	// reading is cut then, and its stream slot freed.
	DefaultWatchWriteTimeout = 30 * time.Second
	watchMaxAge              = 15 * time.Minute
)

// maxMessage bounds a request message, as the HTTP API bounds bodies.
const maxMessage = surgehttp.MaxSaleBody

// boundBody has r's body read at most one message of up to message
// bytes, in an envelope (gRPC's, gRPC-Web's and Connect streams': 5 bytes
// before it): connect-go reads a message over its bound to the end to
// tell its size before refusing it.
func boundBody(w http.ResponseWriter, r *http.Request, message int64) {
	r.Body = http.MaxBytesReader(w, r.Body, message+5)
}

// Service is the gRPC API over a pipeline.
type Service struct {
	svc surgehttp.Service
	// meterer is svc when it keeps each sale's series (the engine does),
	// nil otherwise: purchases are counted there as the HTTP API's are.
	meterer meterer
	log     *slog.Logger
	tick    time.Duration
	// beat is how long a WatchSale stream stays silent before it sends
	// its figures again.
	beat time.Duration
	// writeTimeout bounds each write of a WatchSale stream.
	writeTimeout time.Duration
	// stop ends the open WatchSale streams at shutdown.
	stop     chan struct{}
	stopOnce sync.Once
}

// Config configures the gRPC API.
type Config struct {
	Logger *slog.Logger
	// WatchTick is how often WatchSale looks for changes; 0 is
	// DefaultWatchTick.
	WatchTick time.Duration
	// WatchHeartbeat is how long a WatchSale stream may stay silent before
	// it sends the current figures again; 0 is DefaultWatchHeartbeat.
	WatchHeartbeat time.Duration
	// WatchWriteTimeout bounds each write of a WatchSale stream (the
	// deadline moves forward with every write); 0 is
	// DefaultWatchWriteTimeout. It is kept above the heartbeat: HTTP/2
	// resets a stream whose deadline passes even while it is idle.
	WatchWriteTimeout time.Duration
}

// New returns the gRPC API over svc (the engine, as the HTTP API sees it).
func New(svc surgehttp.Service, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WatchTick <= 0 {
		cfg.WatchTick = DefaultWatchTick
	}
	if cfg.WatchHeartbeat <= 0 {
		cfg.WatchHeartbeat = DefaultWatchHeartbeat
	}
	if cfg.WatchWriteTimeout <= 0 {
		cfg.WatchWriteTimeout = DefaultWatchWriteTimeout
	}
	if quiet := cfg.WatchHeartbeat + cfg.WatchTick; cfg.WatchWriteTimeout <= quiet {
		cfg.WatchWriteTimeout = 2 * quiet
	}
	s := &Service{svc: svc, log: cfg.Logger, tick: cfg.WatchTick, beat: cfg.WatchHeartbeat,
		writeTimeout: cfg.WatchWriteTimeout, stop: make(chan struct{})}
	s.meterer, _ = svc.(meterer)
	return s
}

// meterer is a surgehttp.Service that keeps each sale's series.
type meterer interface {
	Meter(saleID string) *metrics.Sale
}

// Mount is an http.Config.Mount: the service's handler for one set of
// routes, authenticating with api (so that on the Public API of a split
// deployment the admin token grants nothing here either), and the
// standard gRPC health service beside it (health.go).
func (s *Service) Mount(api *surgehttp.Server) []surgehttp.Mounted {
	path, h := s.saleService(api)
	return []surgehttp.Mounted{{Pattern: path, Handler: h, Refuse: refuser()}, s.health()}
}

// refuser answers a refusal the API makes before a call reaches the
// service (the per-address limit) in the call's protocol, as the
// service's own refusals are answered: the API's JSON 429 was read by
// grpc-go and connect-go's gRPC as UNAVAILABLE, with neither the Surge
// code nor the wait. Over the Connect protocol it is still a 429 with
// Retry-After. A request in no protocol of connect-go is left to the API.
func refuser() func(http.ResponseWriter, *http.Request, *surge.Error) bool {
	ew := connect.NewErrorWriter()
	return func(w http.ResponseWriter, r *http.Request, e *surge.Error) bool {
		if !ew.IsSupported(r) {
			return false
		}
		_ = ew.Write(w, r, fromSurge(e))
		return true
	}
}

// saleService is SaleService's handler for one set of routes.
func (s *Service) saleService(api *surgehttp.Server) (string, http.Handler) {
	path, h := surgev1connect.NewSaleServiceHandler(&handler{Service: s, auth: api},
		append(jsonCodecs(), boundedGzip(maxMessage), connect.WithReadMaxBytes(maxMessage), connect.WithInterceptors(callSpans{}))...)
	watch := surgev1connect.SaleServiceWatchSaleProcedure
	getOrder, cancelOrder := surgev1connect.SaleServiceGetOrderProcedure, surgev1connect.SaleServiceCancelOrderProcedure
	getSale, listSales := surgev1connect.SaleServiceGetSaleProcedure, surgev1connect.SaleServiceListSalesProcedure
	purchase := surgev1connect.SaleServicePurchaseProcedure
	procedures := procedures()
	errWriter := connect.NewErrorWriter()
	if api.AdminHidden() {
		// As POST /v1/sales there: 404 not_found, as if it did not exist.
		delete(procedures, surgev1connect.SaleServiceCreateSaleProcedure)
	}
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !procedures[r.URL.Path] {
			// connect-go answers a procedure it lacks in plain text; the
			// API answers every unknown path in its JSON shape.
			surgehttp.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint")
			return
		}
		// The call's route is its procedure: the mux matched the
		// service's prefix, which named every call's span alike
		// (otelhttp names a span by the route), a purchase as a read.
		r.Pattern = r.URL.Path
		// connect-go reads a message over the bound to its end, to tell
		// its size, before refusing it: a client declaring a gigabyte,
		// or trickling one in, kept the call reading for as long as it
		// sent (up to the read timeout) with no answer. The HTTP API
		// reads at most its bound; so does a call now, and connect-go
		// refuses it there (RESOURCE_EXHAUSTED, too_large).
		boundBody(w, r, maxMessage)
		if r.URL.Path == getOrder || r.URL.Path == cancelOrder {
			// One buyer's order, as GET /v1/orders/{id} and its cancel
			// answer it: Connect serves GetOrder over GET, which a cache or
			// CDN in front may keep by its URL and hand to the next caller
			// (or a stale status, or a 404); errors included.
			w.Header().Set("Cache-Control", "private, no-store")
		}
		if r.URL.Path == getSale || r.URL.Path == listSales {
			// Served over GET too; the sale changes every moment, as
			// the HTTP API's sale reads say.
			w.Header().Set("Cache-Control", "no-cache")
		}
		if r.Method == http.MethodGet && (r.URL.Path == getSale || r.URL.Path == listSales || r.URL.Path == getOrder) {
			if err := getQuery(r.URL.RawQuery); err != nil {
				_ = errWriter.Write(w, r, newError(connect.CodeInvalidArgument, string(surge.CodeInvalid), err.Error(), nil))
				return
			}
		}
		if r.URL.Path == watch {
			// The server's write timeout is for answers, not streams: the
			// deadline moves forward with each write, as the HTTP API's
			// event streams move theirs, so that a stream lives its age
			// but a client that stops reading is cut within the bound and
			// its slot freed (a deadline set once for the whole age held
			// both for 16 minutes).
			w = newDeadlineWriter(w, s.writeTimeout)
			// A stream takes a slot of the queue streams' bounds (only
			// here is the client's address known); WatchSale answers a
			// refusal in the caller's protocol.
			release, err := api.StreamSlot(r, "GetSale")
			if err == nil {
				defer release()
			}
			r = r.WithContext(context.WithValue(r.Context(), streamSlotKey{}, streamSlot{err}))
		}
		var start time.Time
		if r.URL.Path == purchase {
			start = time.Now()
		}
		cw := &codedWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		cw.finish()
		if r.URL.Path == purchase {
			s.countRefused(r, cw.refused, start)
		}
	})
}

// countRefused counts in surge_purchases_total a purchase connect-go
// refused itself, before Purchase ran (a message that does not decode,
// such as an unknown field or an explicit quantity 0, or one over the
// bound), answered code: the HTTP API counts these answers (400, 413) as
// every other. The message was not read, so its sale is not known: it
// counts under sale="", as a purchase of a sale this node does not
// serve. A method or a caller gone counts nowhere, as over HTTP.
func (s *Service) countRefused(r *http.Request, code string, start time.Time) {
	if s.meterer == nil || r.Context().Err() != nil {
		return
	}
	if code == string(surge.CodeInvalid) || code == codeTooLarge {
		s.meterer.Meter("").Answered(code, false, time.Since(start))
	}
}

// getQuery refuses the query string of a call over Connect's GET that
// does not parse, or that gives one of the protocol's parameters more
// than once: connect-go reads the first value of each and drops a pair it
// cannot read, without a word, while a proxy, cache or log in front may
// read another value, or the pair dropped (?message=A&message=B read A).
// The call read must be the one sent, as GET /v1/sales refuses a
// parameter given twice.
func getQuery(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("malformed query string: %w", err)
	}
	for _, name := range []string{"message", "encoding", "base64", "compression", "connect"} {
		if len(q[name]) > 1 {
			return fmt.Errorf("query parameter %q appears more than once", name)
		}
	}
	return nil
}

// procedures are the paths of SaleService's methods, as the proto
// declares them.
func procedures() map[string]bool {
	methods := surgev1.File_surge_v1_sale_proto.Services().ByName("SaleService").Methods()
	paths := make(map[string]bool, methods.Len())
	for i := range methods.Len() {
		paths["/"+surgev1connect.SaleServiceName+"/"+string(methods.Get(i).Name())] = true
	}
	return paths
}

// Close ends every open WatchSale stream: http.Server.Shutdown waits for
// handlers. Register it with http.Server.RegisterOnShutdown.
func (s *Service) Close() { s.stopOnce.Do(func() { close(s.stop) }) }

// handler implements surgev1connect.SaleServiceHandler for one set of
// routes.
type handler struct {
	*Service
	auth *surgehttp.Server
}

var _ surgev1connect.SaleServiceHandler = (*handler)(nil)

// caller authenticates a request as the HTTP API does.
func (h *handler) caller(ctx context.Context, hdr http.Header) (surgehttp.Caller, error) {
	c, err := h.auth.Authenticate(ctx, hdr)
	if err != nil {
		if ctx.Err() != nil {
			// The call's deadline passed (or its caller went) while the
			// token's key set was fetched: the token was not judged, and
			// UNAUTHENTICATED would send the client for a new one instead
			// of retrying.
			return c, h.toConnect(ctx, "", ctx.Err())
		}
		return c, newError(connect.CodeUnauthenticated, codeUnauthenticated, err.Error(), nil)
	}
	return c, nil
}

// admin authenticates the operator as the HTTP API's admin routes do,
// and refuses in their words: a buyer PERMISSION_DENIED, anyone else
// UNAUTHENTICATED (docs/api.md#grpc).
func (h *handler) admin(ctx context.Context, hdr http.Header) error {
	buyer, err := h.auth.AuthenticateAdmin(ctx, hdr)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		// As caller: the token was not judged within the call's time.
		return h.toConnect(ctx, "", ctx.Err())
	case buyer:
		return newError(connect.CodePermissionDenied, codeUnauthenticated, err.Error(), nil)
	}
	return newError(connect.CodeUnauthenticated, codeUnauthenticated, err.Error(), nil)
}

func (h *handler) CreateSale(ctx context.Context, req *connect.Request[surgev1.CreateSaleRequest]) (*connect.Response[surgev1.CreateSaleResponse], error) {
	if err := h.admin(ctx, req.Header()); err != nil {
		return nil, err
	}
	m := req.Msg
	in := surge.SaleInput{
		ID: m.Id, PerUserLimit: m.PerUserLimit, PriceCents: m.PriceCents, Currency: m.Currency, HoldSeconds: m.HoldSeconds,
	}
	// Name and stock are required: proto3 has no absence for them, so the
	// empty name and zero stock are sent on as given, and refused.
	in.Name, in.Stock = &m.Name, &m.Stock
	// A Timestamp whose nanos lie outside 0..999,999,999 (or seconds
	// outside years 0001-9999) is not a time: AsTime would read it as
	// another instant. Refused as the HTTP API refuses a time that is not
	// RFC 3339.
	for _, f := range []struct {
		name string
		ts   *timestamppb.Timestamp
		dst  **time.Time
	}{{"starts_at", m.StartsAt, &in.StartsAt}, {"ends_at", m.EndsAt, &in.EndsAt}} {
		if f.ts == nil {
			continue
		}
		if err := f.ts.CheckValid(); err != nil {
			return nil, h.toConnect(ctx, req.Spec().Procedure,
				surge.Errorf(surge.CodeInvalid, "%s must be a valid google.protobuf.Timestamp in years 0001-9999: %v", f.name, err))
		}
		*f.dst = new(f.ts.AsTime())
	}
	if wr := m.WaitingRoom; wr != nil {
		in.WaitingRoom = &surge.WaitingRoom{AdmitPerSecond: wr.AdmitPerSecond, Policy: wr.Order, TicketSeconds: wr.TicketSeconds}
	}
	st, err := h.svc.CreateSale(ctx, in)
	if err != nil {
		return nil, h.toConnect(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&surgev1.CreateSaleResponse{Sale: toSale(st)}), nil
}

func (h *handler) GetSale(ctx context.Context, req *connect.Request[surgev1.GetSaleRequest]) (*connect.Response[surgev1.GetSaleResponse], error) {
	st, err := h.sale(req.Msg.Id)
	if err != nil {
		return nil, h.toConnect(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&surgev1.GetSaleResponse{Sale: toSale(st)}), nil
}

// sale reads a sale; an id that is not one is not found, as in the HTTP
// API's paths.
func (h *handler) sale(id string) (engine.SaleState, error) {
	if !surge.ValidID(id) {
		return engine.SaleState{}, surge.ErrSaleNotFound
	}
	return h.svc.Sale(id)
}

func (h *handler) ListSales(ctx context.Context, req *connect.Request[surgev1.ListSalesRequest]) (*connect.Response[surgev1.ListSalesResponse], error) {
	m := req.Msg
	limit := int(m.Limit)
	if limit == 0 {
		limit = surgehttp.DefaultSalesPage
	}
	if limit < 1 || limit > surgehttp.MaxSalesPage {
		return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "limit must be an integer from 1 to %d", surgehttp.MaxSalesPage))
	}
	var after *engine.SaleCursor
	if m.Cursor != "" {
		c, ok := surgehttp.DecodeCursor(m.Cursor, m.Archived)
		if !ok {
			return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "cursor is not one this listing returned as next_cursor"))
		}
		after = &c
	}
	page, next := h.svc.SalesPage(m.Archived, after, limit)
	out := &surgev1.ListSalesResponse{Sales: make([]*surgev1.Sale, 0, len(page))}
	for _, st := range page {
		out.Sales = append(out.Sales, toSale(st))
	}
	if next != nil {
		out.NextCursor = surgehttp.EncodeCursor(*next, m.Archived)
	}
	return connect.NewResponse(out), nil
}

// Purchase counts every answer in surge_purchases_total, as the HTTP
// API's handler does, under the same outcomes: the Surge code answered,
// or reserved (replay telling a replayed order apart). A purchase whose
// caller is gone, or past its own deadline, counts nowhere. One that
// panics (a bug) is answered 500 by the API's recover, and counts as
// internal.
func (h *handler) Purchase(ctx context.Context, req *connect.Request[surgev1.PurchaseRequest]) (*connect.Response[surgev1.PurchaseResponse], error) {
	start := time.Now()
	if h.meterer != nil {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					h.meterer.Meter(req.Msg.SaleId).Answered("internal", false, time.Since(start))
				}
				panic(v)
			}
		}()
	}
	resp, err := h.purchase(ctx, req)
	if h.meterer == nil {
		return resp, err
	}
	var ce *connect.Error
	switch {
	case err == nil:
		h.meterer.Meter(req.Msg.SaleId).Answered(string(surge.CodeReserved), resp.Msg.Replayed, time.Since(start))
	case errors.As(err, &ce) && ce.Code() != connect.CodeCanceled && ce.Code() != connect.CodeDeadlineExceeded:
		h.meterer.Meter(req.Msg.SaleId).Answered(ce.Meta().Get(CodeHeader), false, time.Since(start))
	}
	return resp, err
}

func (h *handler) purchase(ctx context.Context, req *connect.Request[surgev1.PurchaseRequest]) (*connect.Response[surgev1.PurchaseResponse], error) {
	c, err := h.caller(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	if c.Admin {
		return nil, newError(connect.CodeUnauthenticated, codeUnauthenticated, "purchases need a buyer identity, not the admin token", nil)
	}
	m := req.Msg
	if !surge.ValidID(m.SaleId) {
		return nil, h.toConnect(ctx, req.Spec().Procedure, surge.ErrSaleNotFound)
	}
	// idempotency_key is the Idempotency-Key header, whose value never
	// holds the spaces around it (RFC 9110 §5.5; net/http drops them):
	// the same text must be the same key over both, or a buyer who
	// bought over gRPC and retried over HTTP would buy twice.
	key := strings.Trim(m.IdempotencyKey, " \t")
	if m.IdempotencyKey != "" && !surge.ValidKey(key) {
		return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "idempotency_key must be 1 to 128 printable ASCII characters"))
	}
	// The HTTP API's Idempotency-Key header (gRPC metadata) keys a call
	// too: a client that brought its HTTP code along sets it there, and a
	// retry it believed keyed would otherwise buy again.
	if hs := req.Header().Values("Idempotency-Key"); len(hs) > 0 {
		switch {
		case len(hs) != 1 || !surge.ValidKey(hs[0]):
			return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "Idempotency-Key must be one header of 1 to 128 printable ASCII characters"))
		case m.IdempotencyKey != "" && hs[0] != key:
			return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "idempotency_key and the Idempotency-Key header differ: send the key once"))
		}
		key = hs[0]
	}
	p := surge.Purchase{UserID: c.User, Quantity: max(m.Quantity, 1), IdempotencyKey: key}
	if m.Quantity < 0 {
		p.Quantity = m.Quantity // refused by the engine, as in HTTP
	}
	// The HTTP API's Waiting-Room-Ticket header (gRPC metadata) admits
	// too, as the Idempotency-Key header keys: a client that brought its
	// HTTP code along sends it there. Two headers go to the engine, which
	// refuses them as over HTTP.
	pr := engine.PurchaseRequest{SaleID: m.SaleId, Purchase: p}
	for _, tk := range req.Header().Values(surgehttp.TicketHeader) {
		pr.Tickets = append(pr.Tickets, strings.Trim(tk, " \t"))
	}
	if m.WaitingRoomTicket != "" {
		// The Waiting-Room-Ticket header, spaces around it dropped as
		// for idempotency_key: the same text admits over both.
		field := strings.Trim(m.WaitingRoomTicket, " \t")
		for _, tk := range pr.Tickets {
			if tk != field {
				return nil, h.toConnect(ctx, req.Spec().Procedure, surge.Errorf(surge.CodeInvalid, "waiting_room_ticket and the Waiting-Room-Ticket header differ: send the ticket once"))
			}
		}
		if len(pr.Tickets) == 0 {
			pr.Tickets = []string{field}
		}
	}
	out, err := h.svc.Purchase(ctx, pr)
	if err != nil {
		return nil, h.toConnect(ctx, req.Spec().Procedure, err)
	}
	if out.Code != surge.CodeReserved {
		// The engine's answer, not a failure: sent (and counted) as the
		// HTTP API's is, also when the call's end came meanwhile.
		return nil, fromSurge(surgehttp.Rejection(out.Code))
	}
	return connect.NewResponse(&surgev1.PurchaseResponse{Order: toOrder(out.Order), Replayed: out.Replay}), nil
}

// order fetches an order the caller may see; anyone else gets not found,
// as for a missing order, so ids reveal nothing.
func (h *handler) order(ctx context.Context, hdr http.Header, id string) (surge.Order, error) {
	o, _, err := h.orderOf(ctx, hdr, id)
	return o, err
}

// orderOf is order, also answering who called.
func (h *handler) orderOf(ctx context.Context, hdr http.Header, id string) (surge.Order, surgehttp.Caller, error) {
	c, err := h.caller(ctx, hdr)
	if err != nil {
		return surge.Order{}, c, err
	}
	if !surge.ValidID(id) {
		return surge.Order{}, c, surge.ErrOrderNotFound
	}
	o, err := h.svc.Order(ctx, id)
	if err == nil && !c.Admin && o.UserID != c.User {
		err = surge.ErrOrderNotFound
	}
	return o, c, err
}

func (h *handler) GetOrder(ctx context.Context, req *connect.Request[surgev1.GetOrderRequest]) (*connect.Response[surgev1.GetOrderResponse], error) {
	o, err := h.order(ctx, req.Header(), req.Msg.Id)
	if err != nil {
		return nil, h.orderError(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&surgev1.GetOrderResponse{Order: toOrder(o)}), nil
}

func (h *handler) CancelOrder(ctx context.Context, req *connect.Request[surgev1.CancelOrderRequest]) (*connect.Response[surgev1.CancelOrderResponse], error) {
	o, c, err := h.orderOf(ctx, req.Header(), req.Msg.Id)
	if err == nil {
		// A buyer's cancels count against its share; the operator's do not.
		o, err = h.svc.CancelFor(ctx, c.User, o.ID)
	}
	if err != nil {
		return nil, h.orderError(ctx, req.Spec().Procedure, err)
	}
	return connect.NewResponse(&surgev1.CancelOrderResponse{Order: toOrder(o)}), nil
}

// orderError passes on an authentication error as it is.
func (h *handler) orderError(ctx context.Context, procedure string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	return h.toConnect(ctx, procedure, err)
}

// WatchSale sends the sale's figures, then each change, until the sale
// ends or is archived, the caller goes, the server shuts down, or the
// stream reaches its age.
func (h *handler) WatchSale(ctx context.Context, req *connect.Request[surgev1.WatchSaleRequest], stream *connect.ServerStream[surgev1.WatchSaleResponse]) error {
	if slot, ok := ctx.Value(streamSlotKey{}).(streamSlot); ok && slot.refused != nil {
		return h.toConnect(ctx, req.Spec().Procedure, slot.refused)
	}
	select {
	case <-h.stop:
		// Shutting down or handing over: refused as a queue stream is
		// then, so the client watches elsewhere or later.
		return h.toConnect(ctx, req.Spec().Procedure, surge.ErrUnavailable)
	default:
	}
	st, err := h.sale(req.Msg.Id)
	if err != nil {
		return h.toConnect(ctx, req.Spec().Procedure, err)
	}
	end := time.NewTimer(watchMaxAge)
	defer end.Stop()
	t := time.NewTicker(h.tick)
	defer t.Stop()
	var sent *surgev1.WatchSaleResponse
	var sentAt time.Time
	for {
		// Stale as GET /v1/sales/{id} says it: the caller must be able to
		// tell figures frozen by an outage from a sale nobody buys, and
		// learns at once when they go stale or current again.
		cur := &surgev1.WatchSaleResponse{Remaining: max(st.Remaining, 0), Status: string(st.Status), Stale: st.Stale}
		// The unchanged figures again after a silence of beat, as the
		// HTTP API's event streams send a heartbeat: a proxy or load
		// balancer with an idle timeout cut a stream of a sale that did
		// not change (scheduled, sold out until a hold expires).
		if sent == nil || cur.Remaining != sent.Remaining || cur.Status != sent.Status || cur.Stale != sent.Stale || time.Since(sentAt) >= h.beat {
			if err := stream.Send(cur); err != nil {
				return err
			}
			sent, sentAt = cur, time.Now()
		}
		if st.Status == surge.SaleEnded || st.Archived {
			return nil
		}
		select {
		case <-ctx.Done():
			// Past the call's deadline: DEADLINE_EXCEEDED, not the OK end
			// of a sale that ended or a stream at its age.
			return h.toConnect(ctx, req.Spec().Procedure, ctx.Err())
		case <-h.stop:
			// Shutting down or handing over: UNAVAILABLE with a
			// RetryInfo, what gRPC clients take for a server going away,
			// not the OK end of a sale that ended, so the client calls
			// again (elsewhere) as a new call is then told.
			return h.toConnect(ctx, req.Spec().Procedure, surge.ErrUnavailable)
		case <-end.C:
			return nil
		case <-t.C:
		}
		if st, err = h.svc.Sale(st.ID); err != nil {
			if surge.HasCode(err, surge.CodeSaleNotFound) {
				return nil // archived meanwhile on another node
			}
			return h.toConnect(ctx, req.Spec().Procedure, err)
		}
	}
}

// deadlineWriter moves the connection's write deadline (HTTP/1.1) or the
// stream's (HTTP/2) to timeout from now before each write and flush of a
// WatchSale stream.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func newDeadlineWriter(w http.ResponseWriter, timeout time.Duration) *deadlineWriter {
	d := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}
	d.extend()
	return d
}

func (d *deadlineWriter) extend() {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
}

// Unwrap lets http.ResponseController reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(b)
}

func (d *deadlineWriter) Flush() {
	d.extend()
	_ = d.rc.Flush()
}

// streamSlotKey is the context key of a WatchSale call's streamSlot.
type streamSlotKey struct{}

// streamSlot is what Mount's wrapper got when it asked for the stream's
// slot: refused is nil when it holds one.
type streamSlot struct{ refused error }

func toSale(s engine.SaleState) *surgev1.Sale {
	out := &surgev1.Sale{
		Id: s.ID, Name: s.Name, Stock: s.Stock, Remaining: max(s.Remaining, 0), PerUserLimit: s.PerUserLimit,
		PriceCents: s.PriceCents, Currency: s.Currency, StartsAt: timestamppb.New(s.StartsAt),
		HoldSeconds: s.HoldSeconds, Status: string(s.Status), Stale: s.Stale, Archived: s.Archived,
	}
	if !s.EndsAt.IsZero() {
		out.EndsAt = timestamppb.New(s.EndsAt)
	}
	if wr := s.WaitingRoom; wr != nil {
		out.WaitingRoom = &surgev1.WaitingRoom{AdmitPerSecond: wr.AdmitPerSecond, Order: wr.Policy, TicketSeconds: wr.TicketSeconds}
	}
	return out
}

func toOrder(o surge.Order) *surgev1.Order {
	return &surgev1.Order{
		Id: o.ID, SaleId: o.SaleID, UserId: o.UserID, Quantity: o.Quantity, Status: string(o.Status),
		CreatedAt: timestamppb.New(o.CreatedAt), ExpiresAt: timestamppb.New(o.ExpiresAt), IdempotencyKey: o.IdempotencyKey,
	}
}
