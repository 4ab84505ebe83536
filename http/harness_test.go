package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/internal/testtoken"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

const (
	adminToken = "admin-secret-token"
	userHeader = "X-User-ID"
)

var (
	quietLog  = slog.New(slog.DiscardHandler)
	jwtSecret = []byte("0123456789abcdef0123456789abcdef")
	// epoch is where every test clock starts: a fixed instant, so times in
	// answers can be compared exactly.
	epoch = time.Date(2031, time.March, 14, 9, 26, 53, 0, time.UTC)
	idRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// env is a real engine over a real SQLite store behind the API.
type env struct {
	room    *waitroom.Room // on the engine's clock
	eng     *engine.Engine
	store   *sqlite.Store
	clock   *testclock.Clock
	handler *surgehttp.Server
	srv     *httptest.Server // nil for recorder-only environments
}

type envOptions struct {
	insecureUserHeader bool
	noServer           bool // handler only, for fuzzing through a recorder
	h2c                bool // the server speaks HTTP/1.1 and plain-text HTTP/2, as surge serve's listener does
	inboxSize          int
	protection         surgehttp.Protection
	buyerRate          engine.RateLimiter
	maxQueueStreams    int
	// maxStreamsPerBuyer and maxStreamsPerAddress: 0 is the default.
	maxStreamsPerBuyer   int
	maxStreamsPerAddress int
	// purchaseTimeout: 0 is the engine's default (10 s).
	purchaseTimeout time.Duration
	payments        surgehttp.Payments
	corsOrigins     []string
	// shortTimeouts: streamEnvOptions's server reads and writes within
	// 100 ms, for the tests of streams that outlive those timeouts; only
	// those, as a loaded machine may take longer over a plain request.
	shortTimeouts bool
}

// roomSecret signs the tests' waiting-room tickets.
var roomSecret = []byte("waiting-room test secret, 32 b..")

func newEnv(tb testing.TB, opt envOptions) *env {
	tb.Helper()
	ctx := context.Background()
	// No expiry job: tests expire explicitly (env.expire).
	store, err := sqlite.Open(ctx, tb.TempDir(), sqlite.Options{NoExpiry: true})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	clk := testclock.New(epoch)
	// The API hands out the room's tickets and the engine checks them.
	room, err := waitroom.New(waitroom.Config{Secret: roomSecret, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.Open(ctx, store, engine.Config{
		Now:         clk.Now,
		InboxSize:   opt.inboxSize,
		WaitingRoom: room,
		Logger:      quietLog,
		BuyerRate:   opt.buyerRate,
		// A test that fires thousands of purchases at once on a loaded
		// machine under -race may wait longer than 10 s for its batch.
		PurchaseTimeout: opt.purchaseTimeout,
	})
	if err != nil {
		store.Close()
		tb.Fatalf("open engine: %v", err)
	}
	e := &env{eng: eng, store: store, clock: clk, room: room}
	e.handler = surgehttp.New(eng, surgehttp.Config{
		AdminToken:         adminToken,
		JWTSecret:          jwtSecret,
		InsecureUserHeader: opt.insecureUserHeader,
		Logger:             quietLog,
		Protection:         opt.protection,
		WaitingRoom:        room,
		MaxQueueStreams:    opt.maxQueueStreams,

		MaxQueueStreamsPerBuyer:   opt.maxStreamsPerBuyer,
		MaxQueueStreamsPerAddress: opt.maxStreamsPerAddress,
		Payments:                  opt.payments,
		CORSOrigins:               opt.corsOrigins,
	})
	if !opt.noServer {
		e.srv = httptest.NewUnstartedServer(e.handler)
		if opt.h2c {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			e.srv.Config.Protocols = &p
		}
		e.srv.Start()
	}
	tb.Cleanup(func() {
		if e.srv != nil {
			e.srv.Close()
		}
		if eng.Ready() {
			if err := eng.Close(); err != nil {
				tb.Errorf("close engine: %v", err)
			}
		}
		if err := store.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return e
}

// opt modifies a request before it is sent.
type opt func(*http.Request)

func header(name, value string) opt {
	return func(r *http.Request) { r.Header.Add(name, value) }
}

func bearerAuth(token string) opt { return header("Authorization", "Bearer "+token) }

func asAdmin() opt { return bearerAuth(adminToken) }

// asUser authenticates as a buyer with a valid HS256 JWT.
func asUser(tb testing.TB, user string) opt {
	return bearerAuth(userToken(tb, user))
}

func idemKey(k string) opt { return header("Idempotency-Key", k) }

// chunked hides the body's length, so the client sends it chunked.
func chunked() opt {
	return func(r *http.Request) {
		r.ContentLength = -1
		if r.Body != nil {
			r.Body = io.NopCloser(struct{ io.Reader }{r.Body})
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
	// close: the answer said Connection: close (net/http's client moves
	// that header to Response.Close).
	close bool
}

func (r response) String() string {
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(r.body))
}

// do sends one request to the test server.
func (e *env) do(tb testing.TB, method, path, body string, opts ...opt) response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// serve sends one request through the handler and a recorder.
func (e *env) serve(method, path string, body []byte, opts ...opt) response {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Result().Header, body: rec.Body.Bytes()}
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value (%v)", err)
	}
	return nil
}

func checkJSONType(tb testing.TB, r response) {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q, want application/json (%v)", ct, r)
	}
}

// apiError is the error body of the contract.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// errorCode checks r is a well-formed error and returns its code.
func errorCode(tb testing.TB, r response) string {
	tb.Helper()
	checkJSONType(tb, r)
	if err := checkErrorShape(r.body); err != nil {
		tb.Errorf("%v: %v", r, err)
		return ""
	}
	var e apiError
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// checkErrorShape reports whether b is exactly {"error":{"code","message"}}
// with both strings non-empty.
func checkErrorShape(b []byte) error {
	var raw map[string]map[string]json.RawMessage
	if err := decodeStrict(b, &raw); err != nil {
		return fmt.Errorf("error body is not an object of objects: %v", err)
	}
	inner, ok := raw["error"]
	if len(raw) != 1 || !ok {
		return fmt.Errorf("error body must have exactly the key \"error\"")
	}
	if len(inner) != 2 {
		return fmt.Errorf("error object must have exactly code and message")
	}
	for _, k := range []string{"code", "message"} {
		var s string
		if err := json.Unmarshal(inner[k], &s); err != nil || s == "" {
			return fmt.Errorf("error.%s must be a non-empty string, got %s", k, inner[k])
		}
	}
	return nil
}

// wantError asserts the exact status and error code.
func wantError(tb testing.TB, r response, status int, code string) {
	tb.Helper()
	if r.status != status {
		tb.Errorf("status = %d, want %d (%v)", r.status, status, r)
	}
	if got := errorCode(tb, r); got != code {
		tb.Errorf("error code = %q, want %q (%v)", got, code, r)
	}
}

func wantStatus(tb testing.TB, r response, status int) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status = %d, want %d (%v)", r.status, status, r)
	}
}

var saleKeys = []string{"currency", "ends_at", "hold_seconds", "id", "name", "per_user_limit",
	"price_cents", "remaining", "starts_at", "status", "stock"}

// parseSale checks the exact shape of a sale object.
func parseSale(b []byte) (api.Sale, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return api.Sale{}, fmt.Errorf("sale is not an object: %v", err)
	}
	keys, want := sortedKeys(raw), saleKeys
	if _, ok := raw["waiting_room"]; ok {
		want = append(slices.Clone(saleKeys), "waiting_room")
		slices.Sort(want)
	}
	if !slices.Equal(keys, want) {
		return api.Sale{}, fmt.Errorf("sale keys = %v, want %v", keys, want)
	}
	var s api.Sale
	if err := decodeStrict(b, &s); err != nil {
		return api.Sale{}, fmt.Errorf("decode sale: %v", err)
	}
	if !idRE.MatchString(s.ID) {
		return s, fmt.Errorf("sale id %q does not match %v", s.ID, idRE)
	}
	start, err := time.Parse(time.RFC3339, s.StartsAt)
	if err != nil {
		return s, fmt.Errorf("starts_at: %v", err)
	}
	if s.EndsAt != nil {
		end, err := time.Parse(time.RFC3339, *s.EndsAt)
		if err != nil {
			return s, fmt.Errorf("ends_at: %v", err)
		}
		if !end.After(start) {
			return s, fmt.Errorf("ends_at %s is not after starts_at %s", *s.EndsAt, s.StartsAt)
		}
	}
	switch s.Status {
	case "upcoming", "live", "sold_out", "ended", "paused":
	default:
		return s, fmt.Errorf("sale status %q is not in the contract", s.Status)
	}
	if _, ok := raw["waiting_room"]; ok {
		wr := s.WaitingRoom
		if wr == nil || wr.AdmitPerSecond < 1 || wr.AdmitPerSecond > surge.MaxAdmitPerSecond || wr.TicketSeconds < 1 ||
			wr.TicketSeconds > surge.MaxTicketSeconds || (wr.Policy != "fifo" && wr.Policy != "lottery") {
			return s, fmt.Errorf("waiting_room out of the contract: %s", raw["waiting_room"])
		}
	}
	if s.Stock < 1 || s.Remaining < 0 || s.Remaining > s.Stock || s.PerUserLimit < 1 ||
		s.PerUserLimit > s.Stock || s.PriceCents < 0 || s.HoldSeconds < 1 || s.Name == "" || len(s.Currency) != 3 {
		return s, fmt.Errorf("sale figures out of range: %+v", s)
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var orderKeys = []string{"created_at", "expires_at", "id", "quantity", "sale_id", "status", "user_id"}

// parseOrder checks the exact shape of an order object.
func parseOrder(b []byte) (api.Order, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return api.Order{}, fmt.Errorf("order is not an object: %v", err)
	}
	want := orderKeys
	if _, ok := raw["idempotency_key"]; ok {
		want = append(slices.Clone(orderKeys), "idempotency_key")
		slices.Sort(want)
	}
	if keys := sortedKeys(raw); !slices.Equal(keys, want) {
		return api.Order{}, fmt.Errorf("order keys = %v, want %v", keys, want)
	}
	var o api.Order
	if err := decodeStrict(b, &o); err != nil {
		return api.Order{}, fmt.Errorf("decode order: %v", err)
	}
	if !idRE.MatchString(o.ID) || !idRE.MatchString(o.SaleID) || !idRE.MatchString(o.UserID) {
		return o, fmt.Errorf("order ids do not match %v: %+v", idRE, o)
	}
	if _, ok := raw["idempotency_key"]; ok && !surge.ValidKey(o.IdempotencyKey) {
		return o, fmt.Errorf("idempotency_key %q is not a valid key", o.IdempotencyKey)
	}
	created, err := time.Parse(time.RFC3339, o.CreatedAt)
	if err != nil {
		return o, fmt.Errorf("created_at: %v", err)
	}
	expires, err := time.Parse(time.RFC3339, o.ExpiresAt)
	if err != nil {
		return o, fmt.Errorf("expires_at: %v", err)
	}
	if !expires.After(created) {
		return o, fmt.Errorf("expires_at %s is not after created_at %s", o.ExpiresAt, o.CreatedAt)
	}
	switch o.Status {
	case "reserved", "paid", "cancelled", "expired":
	default:
		return o, fmt.Errorf("order status %q is not in the contract", o.Status)
	}
	if o.Quantity < 1 {
		return o, fmt.Errorf("order quantity %d < 1", o.Quantity)
	}
	return o, nil
}

// parseOrderBody checks {"order": <order>}.
func parseOrderBody(b []byte) (api.Order, error) {
	var wrap map[string]json.RawMessage
	if err := decodeStrict(b, &wrap); err != nil {
		return api.Order{}, fmt.Errorf("order body: %v", err)
	}
	inner, ok := wrap["order"]
	if len(wrap) != 1 || !ok {
		return api.Order{}, fmt.Errorf("order body keys = %v, want [order]", sortedKeys(wrap))
	}
	return parseOrder(inner)
}

func mustSale(tb testing.TB, r response) api.Sale {
	tb.Helper()
	checkJSONType(tb, r)
	s, err := parseSale(r.body)
	if err != nil {
		tb.Fatalf("%v: %v", r, err)
	}
	return s
}

func mustOrder(tb testing.TB, r response) api.Order {
	tb.Helper()
	checkJSONType(tb, r)
	o, err := parseOrderBody(r.body)
	if err != nil {
		tb.Fatalf("%v: %v", r, err)
	}
	return o
}

// createSale creates a sale from a JSON body and returns it.
func (e *env) createSale(tb testing.TB, body string) api.Sale {
	tb.Helper()
	r := e.do(tb, "POST", "/v1/sales", body, asAdmin())
	wantStatus(tb, r, http.StatusCreated)
	return mustSale(tb, r)
}

// list reads GET /v1/sales and checks its shape.
func (e *env) list(tb testing.TB) []api.Sale {
	tb.Helper()
	r := e.do(tb, "GET", "/v1/sales", "")
	wantStatus(tb, r, http.StatusOK)
	checkJSONType(tb, r)
	var list map[string][]json.RawMessage
	if err := decodeStrict(r.body, &list); err != nil || len(list) != 1 || list["sales"] == nil {
		tb.Fatalf("GET /v1/sales = %s (%v)", r.body, err)
	}
	out := make([]api.Sale, 0, len(list["sales"]))
	for i, raw := range list["sales"] {
		s, err := parseSale(raw)
		if err != nil {
			tb.Fatalf("sale %d of the list: %v", i, err)
		}
		out = append(out, s)
	}
	return out
}

func (e *env) sale(tb testing.TB, id string) api.Sale {
	tb.Helper()
	r := e.do(tb, "GET", "/v1/sales/"+id, "")
	wantStatus(tb, r, http.StatusOK)
	return mustSale(tb, r)
}

func (e *env) buy(tb testing.TB, saleID string, opts ...opt) api.Order {
	tb.Helper()
	r := e.do(tb, "POST", "/v1/sales/"+saleID+"/purchases", "", opts...)
	wantStatus(tb, r, http.StatusCreated)
	return mustOrder(tb, r)
}

// export reads the NDJSON export of a sale, line by line.
func (e *env) export(tb testing.TB, saleID string) []api.Order {
	tb.Helper()
	r := e.do(tb, "GET", "/v1/sales/"+saleID+"/orders", "", asAdmin())
	wantStatus(tb, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		tb.Errorf("export Content-Type = %q, want application/x-ndjson", ct)
	}
	if len(r.body) == 0 {
		return nil
	}
	if !bytes.HasSuffix(r.body, []byte("\n")) {
		tb.Fatalf("export does not end with a newline: %q", r.body)
	}
	var out []api.Order
	for i, line := range bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n")) {
		o, err := parseOrder(line)
		if err != nil {
			tb.Fatalf("export line %d %q: %v", i+1, line, err)
		}
		out = append(out, o)
	}
	return out
}

// snapshot is what a rejected request must leave unchanged.
type snapshot struct {
	remaining int64
	status    string
	orders    []api.Order
}

func (e *env) snapshot(tb testing.TB, saleID string) snapshot {
	tb.Helper()
	s := e.sale(tb, saleID)
	return snapshot{remaining: s.Remaining, status: s.Status, orders: e.export(tb, saleID)}
}

func (e *env) wantUnchanged(tb testing.TB, saleID string, before snapshot) {
	tb.Helper()
	after := e.snapshot(tb, saleID)
	if after.remaining != before.remaining || after.status != before.status {
		tb.Errorf("sale changed: remaining %d -> %d, status %s -> %s",
			before.remaining, after.remaining, before.status, after.status)
	}
	if !slices.Equal(after.orders, before.orders) {
		tb.Errorf("orders changed:\nbefore %+v\nafter  %+v", before.orders, after.orders)
	}
}

// JWTs.

func userToken(tb testing.TB, user string) string {
	tb.Helper()
	return testtoken.Buyer(tb, jwtSecret, user)
}
