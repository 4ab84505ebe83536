package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/sqlite"
)

const (
	testAdmin     = "bench-admin-token"
	testJWTSecret = "0123456789abcdef0123456789abcdef"
)

// serverOptions vary the test server.
type serverOptions struct {
	jwtOnly bool                            // buyers need a JWT; X-User-ID is refused
	wrap    func(http.Handler) http.Handler // middleware around the API
}

// newServer runs the real API (HTTP handler, engine, SQLite in a temporary
// directory) on a loopback listener.
func newServer(t *testing.T, opt serverOptions) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	store, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	eng, err := engine.Open(ctx, store, engine.Config{Logger: quiet})
	if err != nil {
		store.Close()
		t.Fatalf("open engine: %v", err)
	}
	cfg := surgehttp.Config{AdminToken: testAdmin, InsecureUserHeader: !opt.jwtOnly, Logger: quiet}
	if opt.jwtOnly {
		cfg.JWTSecret = []byte(testJWTSecret)
	}
	var h http.Handler = surgehttp.New(eng, cfg)
	if opt.wrap != nil {
		h = opt.wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := eng.Close(); err != nil {
			t.Errorf("close engine: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return srv
}

// retriers counts the buyers among the first n who send their purchase twice.
func retriers(cfg Config, n int) int64 {
	c := crowd{users: cfg.Users, seed: cfg.Seed, prefix: cfg.UserPrefix, maxQuantity: max(cfg.MaxQuantity, 1), retryShare: cfg.RetryShare}
	var r int64
	for i := range n {
		if c.buyer(i).retries {
			r++
		}
	}
	return r
}

// checkCounts asserts that the figures of a run add up.
func checkCounts(t *testing.T, res *Result, confirmed []Confirmation) {
	t.Helper()
	var codes, statuses int64
	for _, n := range res.Codes {
		codes += n
	}
	for _, n := range res.Status {
		statuses += n
	}
	var sec SecondStats
	for i, s := range res.Seconds {
		if s.Second != i {
			t.Errorf("seconds[%d] is second %d", i, s.Second)
		}
		sec.Offered += s.Offered
		sec.Completed += s.Completed
		sec.Reserved += s.Reserved
		sec.Rejected += s.Rejected
		sec.Failed += s.Failed
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"codes", codes, res.Sent},
		{"completed+errors", res.Completed + res.Errors, res.Sent},
		{"statuses", statuses, res.Completed},
		{"transport errors", res.Codes[codeTransport], res.Errors},
		{"latencies", res.Latency.Count, res.Sent}, // transport errors too
		{"201s", res.Status[http.StatusCreated], res.Codes[codeReserved] + res.Codes[codeReplayed]},
		{"confirmations", int64(len(confirmed)), res.Codes[codeReserved] + res.Codes[codeReplayed]},
		{"completed by second", sec.Completed, res.Completed},
		{"reserved by second", sec.Reserved, res.Status[http.StatusCreated]},
		{"rejected by second", sec.Rejected, res.Status[http.StatusConflict]},
		{"failed by second", sec.Failed, res.Sent - res.Status[http.StatusCreated] - res.Status[http.StatusConflict]},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if res.Elapsed <= 0 || res.Throughput <= 0 || len(res.Seconds) < int((time.Duration(res.Elapsed)+time.Second-1)/time.Second) {
		t.Errorf("elapsed %v, throughput %.1f, %d seconds", time.Duration(res.Elapsed), res.Throughput, len(res.Seconds))
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v is not ordered", res.Latency)
	}
	if res.Client.CPUSeconds <= 0 || res.Client.CPUShare <= 0 || res.Client.CPUShare > 1.0001 {
		t.Errorf("client overhead %+v", res.Client)
	}
}

// verifyRun reads the sale back and verifies it, and checks that what the
// run counted matches what the server holds.
func verifyRun(t *testing.T, srv *httptest.Server, res *Result, confirmed []Confirmation) *Verdict {
	t.Helper()
	sale, orders, err := Fetch(context.Background(), client.New(srv.URL, testAdmin), res.SaleID)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	v := VerifyRun(res, sale, orders, confirmed, time.Now())
	if !v.OK {
		t.Fatalf("verdict fails: %+v", v.Checks)
	}
	// A 201 is a new reservation or a replay (marked Idempotent-Replayed),
	// never both: the new ones are exactly the distinct orders confirmed.
	if v.Confirmed != res.Codes[codeReserved] {
		t.Errorf("%d distinct orders confirmed, but %d 201s counted as new reservations (%d as replays)",
			v.Confirmed, res.Codes[codeReserved], res.Codes[codeReplayed])
	}
	// Every order came from a 201 the run saw (nobody else buys here).
	units := make(map[string]int64)
	for _, c := range confirmed {
		units[c.OrderID] = c.Quantity
	}
	var sold int64
	for _, q := range units {
		sold += q
	}
	if v.Orders != int64(len(units)) || v.Confirmed != v.Orders || sold != v.LiveUnits || sold != sale.Stock-sale.Remaining {
		t.Errorf("orders %d, confirmed %d, live units %d, stock %d − remaining %d; the run confirmed %d orders of %d units",
			v.Orders, v.Confirmed, v.LiveUnits, sale.Stock, sale.Remaining, len(units), sold)
	}
	return v
}

func TestRunEndToEnd(t *testing.T) {
	base := Config{
		AdminToken: testAdmin, CreateSale: true, Stock: 300, PerUserLimit: 2,
		Users: 2000, MaxQuantity: 2, RetryShare: 0.25, Connections: 16, Seed: 7,
	}
	tests := []struct {
		name   string
		mode   Mode
		shape  Shape
		prefix string
		saleID string
	}{
		{name: "closed loop", mode: ClosedLoop, prefix: "closed-", saleID: "closed-drop"},
		// The spike offers 2500 requests: the crowd of 2000 runs out first.
		{name: "open loop", mode: OpenLoop, prefix: "open-",
			shape: Spike{Peak: 2500, Ramp: 250 * time.Millisecond, Hold: 750 * time.Millisecond, Decay: 250 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, serverOptions{})
			cfg := base
			cfg.Target, cfg.Mode, cfg.Shape, cfg.UserPrefix, cfg.SaleID = srv.URL, tt.mode, tt.shape, tt.prefix, tt.saleID
			var progress bytes.Buffer
			res, confirmed, err := Run(context.Background(), cfg, &progress)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			checkCounts(t, res, confirmed)
			if want := int64(cfg.Users) + retriers(cfg, cfg.Users); res.Sent != want {
				t.Errorf("sent %d, want %d users + retries", res.Sent, want)
			}
			var offered int64
			for _, s := range res.Seconds {
				offered += s.Offered
			}
			if offered != res.Sent {
				t.Errorf("offered %d, sent %d: every request due was sent", offered, res.Sent)
			}
			if res.Errors != 0 || res.Codes["sold_out"] == 0 || res.Codes[codeReserved] == 0 || res.Codes[codeReplayed] == 0 {
				t.Errorf("codes %v: want reservations, replays, sold-outs and no errors", res.Codes)
			}
			if res.SoldOutAt <= 0 || res.SoldOutAt > res.Elapsed {
				t.Errorf("sold out at %v of a run of %v: want the first sold_out answer's time",
					time.Duration(res.SoldOutAt), time.Duration(res.Elapsed))
			}
			if res.SaleID == "" || (tt.saleID != "" && res.SaleID != tt.saleID) || res.Target != srv.URL || res.Mode != tt.mode ||
				res.Users != cfg.Users || res.Connections != cfg.Connections || res.Started.IsZero() {
				t.Errorf("result header %+v does not echo the run", res)
			}
			if tt.shape != nil && res.Shape != tt.shape.String() {
				t.Errorf("shape %q, want %q", res.Shape, tt.shape)
			}
			out := progress.String()
			// Not a terminal: a line a second, no \r, the last the final figures.
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if strings.Contains(out, "\r") || !strings.HasSuffix(out, "\n") || !strings.Contains(lines[len(lines)-1], fmt.Sprintf("sent %d ", res.Sent)) {
				t.Errorf("progress %q: want plain lines ending in the final figures and a newline", out)
			}
			// Each 201's own expires_at and hold are kept, for the
			// confirmed-orders check: the sale's default hold is 900 s.
			for _, c := range confirmed {
				if c.Expires.IsZero() || c.Hold != 900*time.Second {
					t.Errorf("confirmation %+v: want the 201's expires_at and its hold of 15m0s", c)
					break
				}
			}
			v := verifyRun(t, srv, res, confirmed)
			if v.LiveUnits < cfg.Stock-1 {
				t.Errorf("%d of %d units sold to a crowd asking for more", v.LiveUnits, cfg.Stock)
			}
		})
	}
}

func TestRunJWT(t *testing.T) {
	srv := newServer(t, serverOptions{jwtOnly: true})
	cfg := Config{
		Target: srv.URL, AdminToken: testAdmin, CreateSale: true, Stock: 50, PerUserLimit: 1,
		Users: 100, RetryShare: 0.5, JWTSecret: testJWTSecret, UserPrefix: "jwt-", Connections: 4, Seed: 3,
	}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCounts(t, res, confirmed)
	if res.Status[http.StatusUnauthorized] != 0 || res.Codes[codeReserved] == 0 {
		t.Errorf("statuses %v: buyers' tokens should be accepted", res.Status)
	}
	verifyRun(t, srv, res, confirmed)
}

// A crowd of a million with a short Duration: the run ends by itself, and
// what it confirmed holds.
func TestRunStopsAtDuration(t *testing.T) {
	srv := newServer(t, serverOptions{})
	cfg := Config{
		Target: srv.URL, AdminToken: testAdmin, CreateSale: true, Stock: 1_000_000_000, Users: 1_000_000,
		RetryShare: 0.1, UserPrefix: "dur-", Connections: 8, Duration: 300 * time.Millisecond,
	}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Sent == 0 || res.Sent >= int64(cfg.Users) {
		t.Errorf("sent %d of a crowd of %d", res.Sent, cfg.Users)
	}
	checkCounts(t, res, confirmed)
	verifyRun(t, srv, res, confirmed)
}

// Cancelling the context ends an open-loop run meant to last an hour; the
// requests in flight still finish, so what was confirmed holds.
func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int64
	srv := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/purchases") && seen.Add(1) == 50 {
				cancel() // mid-run, with requests in flight
			}
			h.ServeHTTP(w, r)
		})
	}})
	cfg := Config{
		Target: srv.URL, AdminToken: testAdmin, CreateSale: true, Stock: 20, Users: 1_000_000, UserPrefix: "ctx-",
		Mode: OpenLoop, Shape: Constant{PerSecond: 500, For: time.Hour}, Connections: 8,
	}
	res, confirmed, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Sent < 50 || res.Sent > 1000 {
		t.Errorf("sent %d: want the run to stop soon after the 50th request", res.Sent)
	}
	checkCounts(t, res, confirmed)
	verifyRun(t, srv, res, confirmed)
}

// stub answers purchases with answer(attempt number of this key), and
// GET /v1/sales/{id} with a sale, for runs against an existing sale.
func stub(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, attempt int)) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	attempts := make(map[string]int)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"stock":1000,"remaining":1000,"per_user_limit":1}`, r.PathValue("id"))
	})
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-User-ID") + " " + r.Header.Get("Idempotency-Key")
		mu.Lock()
		attempts[key]++
		n := attempts[key]
		mu.Unlock()
		answer(w, r, n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func reserve(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"order":{"id":"o-%s","user_id":%q,"quantity":1,"status":"reserved"}}`, r.Header.Get("X-User-ID"), r.Header.Get("X-User-ID"))
}

func overloaded(w http.ResponseWriter, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, `{"error":{"code":"overloaded","message":"try later"}}`)
}

func TestRunRetryAfter(t *testing.T) {
	const users = 20
	tests := []struct {
		name      string
		retry     bool
		duration  time.Duration // default 5s: a bound in case resends never stop
		answer    func(w http.ResponseWriter, r *http.Request, attempt int)
		sent      int64
		confirmed int
	}{
		{
			name: "resent after the delay", retry: true, sent: 2 * users, confirmed: users,
			answer: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					overloaded(w, "0")
					return
				}
				reserve(w, r)
			},
		},
		{
			name: "not resent without Retry", retry: false, sent: users, confirmed: 0,
			answer: func(w http.ResponseWriter, r *http.Request, n int) { overloaded(w, "0") },
		},
		{
			name: "not resent without Retry-After", retry: true, sent: users, confirmed: 0,
			answer: func(w http.ResponseWriter, r *http.Request, n int) { overloaded(w, "") },
		},
		{
			name: "attempts are bounded", retry: true, sent: users * maxAttempts, confirmed: 0,
			answer: func(w http.ResponseWriter, r *http.Request, n int) { overloaded(w, "0") },
		},
		{
			name: "not past the run's end", retry: true, duration: 300 * time.Millisecond, sent: users, confirmed: 0,
			answer: func(w http.ResponseWriter, r *http.Request, n int) { overloaded(w, "1") },
		},
		{
			name: "429 too", retry: true, sent: 2 * users, confirmed: users,
			answer: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				reserve(w, r)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := stub(t, tt.answer)
			cfg := Config{Target: srv.URL, SaleID: "s", Users: users, Connections: 4, Retry: tt.retry, Duration: cmp.Or(tt.duration, 5*time.Second)}
			res, confirmed, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			checkCountsStub(t, res, confirmed)
			if res.Sent != tt.sent || len(confirmed) != tt.confirmed {
				t.Errorf("sent %d, confirmed %d; want %d, %d (statuses %v)", res.Sent, len(confirmed), tt.sent, tt.confirmed, res.Status)
			}
		})
	}
}

// checkCountsStub is checkCounts for stub servers, whose answers are too
// quick and few for a meaningful latency order.
func checkCountsStub(t *testing.T, res *Result, confirmed []Confirmation) {
	t.Helper()
	var codes int64
	for _, n := range res.Codes {
		codes += n
	}
	if codes != res.Sent || res.Completed+res.Errors != res.Sent || int64(len(confirmed)) != res.Codes[codeReserved] {
		t.Errorf("counts do not add up: sent %d, completed %d, errors %d, codes %v, %d confirmations",
			res.Sent, res.Completed, res.Errors, res.Codes, len(confirmed))
	}
}

func TestRunOutcomeCodes(t *testing.T) {
	srv := stub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch user := r.Header.Get("X-User-ID"); user {
		case "u0":
			reserve(w, r)
		case "u1":
			w.WriteHeader(http.StatusCreated) // no order in the body
			fmt.Fprint(w, `{}`)
		case "u2":
			w.WriteHeader(http.StatusBadGateway) // not the API's error shape
			fmt.Fprint(w, "<html>bad gateway</html>")
		case "u3":
			// No answer at all: the connection is cut.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case "u4":
			// Bodies over maxBody are answers whose body is not read.
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"order":{"id":"o-u4","pad":%q}}`, strings.Repeat("x", maxBody))
		case "u5":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"error":{"code":"sold_out","message":%q}}`, strings.Repeat("x", maxBody))
		default:
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"code":"sold_out","message":"sold out"}}`)
		}
	})
	cfg := Config{Target: srv.URL, SaleID: "s", Users: 10, Connections: 1}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := map[string]int64{codeReserved: 1, codeBadBody: 2, codeHTTPError: 2, codeTransport: 1, "sold_out": 4}
	if !equalMaps(res.Codes, want) || res.Errors != 1 || res.Completed != 9 || res.Latency.Count != 10 {
		t.Errorf("codes %v, errors %d, completed %d, latencies %d; want %v, 1, 9, 10 (the transport error's too)", res.Codes, res.Errors, res.Completed, res.Latency.Count, want)
	}
	want0 := Confirmation{OrderID: "o-u0", UserID: "u0", Key: (&crowd{users: 10, maxQuantity: 1}).buyer(0).key, Quantity: 1}
	if len(confirmed) != 1 || confirmed[0].Sent.IsZero() {
		t.Fatalf("confirmations %+v, want one, with the time its key was first sent", confirmed)
	}
	got := confirmed[0]
	got.Sent = time.Time{}
	if got != want0 {
		t.Errorf("confirmations %+v, want [%+v]", confirmed, want0)
	}
}

// The run opens at most Connections connections and keeps them alive
// from one purchase to the next.
func TestRunConnections(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"id":"s","stock":1000,"remaining":1000,"per_user_limit":1}`)
			return
		}
		reserve(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := Config{Target: srv.URL, SaleID: "s", Users: 500, Connections: 4}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCountsStub(t, res, confirmed)
	if len(confirmed) != cfg.Users {
		t.Errorf("%d confirmations, want %d (codes %v)", len(confirmed), cfg.Users, res.Codes)
	}
	// One more for reading the sale before the run.
	if n := opened.Load(); n > int64(cfg.Connections)+1 {
		t.Errorf("%d connections opened for %d purchases over %d connections", n, cfg.Users, cfg.Connections)
	}
}

// A keep-alive connection that the server closed while it was idle is
// not a failure: the purchase is resent on a new connection.
func TestRunStaleConnection(t *testing.T) {
	var purchases atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"id":"s","stock":1000,"remaining":1000,"per_user_limit":1}`)
			return
		}
		if purchases.Add(1) == 1 {
			// The first buyer is told to come back in a second: the
			// connection idles out meanwhile.
			overloaded(w, "1")
			return
		}
		reserve(w, r)
	}))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := Config{Target: srv.URL, SaleID: "s", Users: 2, Connections: 1, Retry: true, Duration: 5 * time.Second}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCountsStub(t, res, confirmed)
	if res.Errors != 0 || res.Sent != 3 || len(confirmed) != 2 {
		t.Errorf("errors %d, sent %d, %d confirmations (codes %v); want 0, 3, 2", res.Errors, res.Sent, len(confirmed), res.Codes)
	}
}

// A request not answered within Timeout is a transport error; the others
// go on.
func TestRunTimeout(t *testing.T) {
	srv := stub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get("X-User-ID") == "u1" {
			// Read to the end, so that the server sees the client close.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done(): // the client gave up and closed
			case <-time.After(5 * time.Second):
			}
			return
		}
		reserve(w, r)
	})
	cfg := Config{Target: srv.URL, SaleID: "s", Users: 5, Connections: 2, Timeout: 200 * time.Millisecond}
	start := time.Now()
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCountsStub(t, res, confirmed)
	if res.Errors != 1 || res.Codes[codeTransport] != 1 || len(confirmed) != 4 {
		t.Errorf("errors %d, codes %v, %d confirmations; want 1 timeout and 4 reservations", res.Errors, res.Codes, len(confirmed))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("run took %v with a %v timeout", d, cfg.Timeout)
	}
}

func TestOrderID(t *testing.T) {
	tests := []struct {
		body string
		want string // "": no order
	}{
		{`{"order":{"id":"o-1","user_id":"u","quantity":1,"status":"reserved"}}` + "\n", "o-1"},
		{`{"order":{"user_id":"u","id":"o-2"}}`, "o-2"},
		{`{ "order": { "id": "o-3" } }`, "o-3"},
		{`{"order":{"id":"o\u002d4"}}`, "o-4"},
		{`{"order":{"id":"o\"5"}}`, `o"5`},
		{`{"order":{"id":"o-6"`, ""},
		{`{"order":{"id":"o-7"}} trailing`, ""},
		{`{"order":{"id":""}}`, ""},
		{`{"order":{}}`, ""},
		{`{}`, ""},
		{``, ""},
	}
	for _, tt := range tests {
		got, ok := orderID([]byte(tt.body))
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("orderID(%s) = %q, %v; want %q", tt.body, got, ok, tt.want)
		}
	}
}

func TestRunSaleErrors(t *testing.T) {
	srv := newServer(t, serverOptions{})
	base := Config{Target: srv.URL, AdminToken: testAdmin, Users: 1, Connections: 1}
	create := base
	create.CreateSale, create.Stock, create.SaleID = true, 5, "taken"
	if _, _, err := Run(context.Background(), create, nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if _, _, err := Run(context.Background(), create, nil); err == nil || !strings.Contains(err.Error(), "sale_exists") {
		t.Errorf("creating a taken sale id: %v, want sale_exists", err)
	}
	missing := base
	missing.SaleID = "nope"
	if _, _, err := Run(context.Background(), missing, nil); err == nil || !strings.Contains(err.Error(), "sale_not_found") {
		t.Errorf("buying from a missing sale: %v, want sale_not_found", err)
	}
	tooMany := base
	tooMany.SaleID, tooMany.MaxQuantity = "taken", 2
	if _, _, err := Run(context.Background(), tooMany, nil); err == nil || !strings.Contains(err.Error(), "per-user limit 1") {
		t.Errorf("quantities over the sale's limit: %v, want an error", err)
	}
}

func TestPrepare(t *testing.T) {
	good := Config{Target: "http://127.0.0.1:8080", SaleID: "drop", Users: 10, Connections: 2}
	got, err := prepare(good)
	if err != nil {
		t.Fatalf("prepare(%+v): %v", good, err)
	}
	if got.Mode != ClosedLoop || got.MaxQuantity != 1 || got.Timeout != defaultTimeout {
		t.Errorf("defaults: mode %q, max quantity %d, timeout %v", got.Mode, got.MaxQuantity, got.Timeout)
	}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{"no target", func(c *Config) { c.Target = "" }, "target must be a base URL"},
		{"target without scheme", func(c *Config) { c.Target = "127.0.0.1:8080" }, "target must be a base URL"},
		{"ftp target", func(c *Config) { c.Target = "ftp://127.0.0.1" }, "target must be a base URL"},
		{"bad sale id", func(c *Config) { c.SaleID = "a/b" }, "sale id"},
		{"no sale", func(c *Config) { c.SaleID = "" }, "give the sale id"},
		{"create without token", func(c *Config) { c.CreateSale, c.Stock = true, 5 }, "admin token"},
		{"create without stock", func(c *Config) { c.CreateSale, c.AdminToken = true, "t" }, "stock must be at least 1"},
		{"limit over stock", func(c *Config) { c.CreateSale, c.AdminToken, c.Stock, c.PerUserLimit = true, "t", 5, 6 }, "per-user limit"},
		{"quantity over limit", func(c *Config) {
			c.CreateSale, c.AdminToken, c.Stock, c.PerUserLimit, c.MaxQuantity = true, "t", 5, 2, 3
		}, "max quantity 3 is over the per-user limit 2"},
		{"quantity over default limit", func(c *Config) { c.CreateSale, c.AdminToken, c.Stock, c.MaxQuantity = true, "t", 5, 2 }, "per-user limit 1"},
		{"no users", func(c *Config) { c.Users = 0 }, "users must be at least 1"},
		{"negative quantity", func(c *Config) { c.MaxQuantity = -1 }, "max quantity must be at least 1"},
		{"retry share over 1", func(c *Config) { c.RetryShare = 1.5 }, "retry share"},
		{"retry share NaN", func(c *Config) { c.RetryShare = math.NaN() }, "retry share"},
		{"bad prefix", func(c *Config) { c.UserPrefix = "a b" }, "user prefix"},
		{"long prefix", func(c *Config) { c.UserPrefix, c.Users = strings.Repeat("p", 58), 1_000_000 }, "too long"},
		{"unknown mode", func(c *Config) { c.Mode = "half-open" }, "mode must be"},
		{"shape in closed loop", func(c *Config) { c.Shape = Constant{PerSecond: 1, For: time.Second} }, "open loop only"},
		{"open loop without shape", func(c *Config) { c.Mode = OpenLoop }, "needs a shape"},
		{"empty shape", func(c *Config) { c.Mode, c.Shape = OpenLoop, Constant{PerSecond: 1} }, "no length"},
		{"no connections", func(c *Config) { c.Connections = 0 }, "connections must be between"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "duration"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			if _, err := prepare(cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("prepare: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	// The longest prefix that fits.
	fits := good
	fits.UserPrefix, fits.Users = strings.Repeat("p", 57), 1_000_000
	if _, err := prepare(fits); err != nil {
		t.Errorf("a 64-character user id is valid: %v", err)
	}
}

func TestValidRetryAfter(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "0": true, "1": true, " 120 ": true, "3600": true, "-1": false, "1.5": false, "soon": false,
		"Wed, 21 Oct 2015 07:28:00 GMT": true, "21 Oct 2015": false,
	} {
		if got := validRetryAfter(v); got != want {
			t.Errorf("validRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// Under shedding the run counts what was decided (201, 409), what was
// shed (429, 503) and the 5xx that are not honest shedding.
func TestRunGoodputAndShedding(t *testing.T) {
	srv := stub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch user := r.Header.Get("X-User-ID"); user[len(user)-1] {
		case '0', '1', '2':
			reserve(w, r)
		case '3':
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"code":"sold_out","message":"sold out"}}`)
		case '4', '5':
			overloaded(w, "1")
		case '6':
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
		case '7':
			overloaded(w, "") // no Retry-After: counted as a bad 5xx
		case '8':
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"code":"internal","message":"internal error"}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"invalid_request","message":"bad"}}`)
		}
	})
	cfg := Config{Target: srv.URL, SaleID: "s", UserPrefix: "u", Users: 100, Connections: 4}
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkCountsStub(t, res, confirmed)
	if res.Shed != 40 || res.BadServerErrors != 20 || res.Admitted.Count != 60 {
		t.Errorf("shed %d, bad 5xx %d, admitted %d; want 40, 20, 60 (statuses %v)", res.Shed, res.BadServerErrors, res.Admitted.Count, res.Status)
	}
	decided := float64(res.Status[201] + res.Status[409])
	if decided != 40 || math.Abs(res.Goodput-decided/time.Duration(res.Elapsed).Seconds()) > 1e-6 {
		t.Errorf("goodput %.1f/s from %v decided in %s", res.Goodput, decided, time.Duration(res.Elapsed))
	}
	if res.Scheduled != 0 || res.Unsent != 0 {
		t.Errorf("a closed-loop run reports scheduled %d, unsent %d; want none", res.Scheduled, res.Unsent)
	}
}

// An open-loop run reports how much of its shape it really sent: all of
// it against a quick server, less when every connection is held up.
func TestRunScheduledAndUnsent(t *testing.T) {
	var slow atomic.Bool
	srv := stub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if slow.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		reserve(w, r)
	})
	shape := Constant{PerSecond: 200, For: 500 * time.Millisecond} // 100 purchases
	cfg := Config{Target: srv.URL, SaleID: "s", Users: 1000, Connections: 16, Mode: OpenLoop, Shape: shape}
	res, _, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Scheduled != 100 || res.Unsent != 0 {
		t.Errorf("quick server: scheduled %d, unsent %d; want 100, 0", res.Scheduled, res.Unsent)
	}
	// One connection at 10 answers a second, for 500 ms: at most ~6 sent.
	slow.Store(true)
	cfg.Connections, cfg.Duration = 1, 500*time.Millisecond
	res, _, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Scheduled != 100 || res.Unsent < 80 || res.Unsent+res.Sent != res.Scheduled {
		t.Errorf("held-up server: scheduled %d, sent %d, unsent %d; want 100 scheduled, at least 80 unsent, the rest sent", res.Scheduled, res.Sent, res.Unsent)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2031, time.March, 14, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 2 ", 2 * time.Second, true},
		{"30", 30 * time.Second, true},
		{"31", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(time.Hour).Format(http.TimeFormat), 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.header, now)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

// fakeSurge is a sale of stock units behind answer: a purchase answer
// returns true reserves a unit for the buyer (one order per buyer), which
// the sale's remaining count and the admin export then show, so that the
// guarantees verify and only the run's own checks can fail.
func fakeSurge(t *testing.T, stock int64, answer func(w http.ResponseWriter, r *http.Request) bool) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	var orders []api.Order
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sales/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, `{"id":%q,"stock":%d,"remaining":%d,"per_user_limit":1}`, r.PathValue("id"), stock, stock-int64(len(orders)))
	})
	mux.HandleFunc("GET /v1/sales/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		enc := json.NewEncoder(w)
		for _, o := range orders {
			_ = enc.Encode(o)
		}
	})
	mux.HandleFunc("POST /v1/sales/{id}/purchases", func(w http.ResponseWriter, r *http.Request) {
		if !answer(w, r) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		user := r.Header.Get("X-User-ID")
		if int64(len(orders)) >= stock {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"code":"sold_out","message":"sold out"}}`)
			return
		}
		o := api.Order{ID: "o-" + user, SaleID: r.PathValue("id"), UserID: user, Quantity: 1, Status: "reserved", IdempotencyKey: r.Header.Get("Idempotency-Key")}
		orders = append(orders, o)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]api.Order{"order": o})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// runAndVerify runs cfg against srv and verifies it as surge bench does.
func runAndVerify(t *testing.T, srv *httptest.Server, cfg Config) (*Result, *Verdict) {
	t.Helper()
	res, confirmed, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	sale, orders, err := Fetch(context.Background(), client.New(srv.URL, testAdmin), res.SaleID)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return res, VerifyRun(res, sale, orders, confirmed, time.Now())
}

// TestRunVerdictOfRefusedRequests: a run in which more than 1 % of the
// answers were 400, 401 or 403 fails, with the share and the statuses in
// the verdict, even though every guarantee held.
func TestRunVerdictOfRefusedRequests(t *testing.T) {
	refuse := func(status int, code string, every int) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			var n int
			fmt.Sscanf(strings.TrimPrefix(r.Header.Get("X-User-ID"), "x-u"), "%d", &n)
			if every > 0 && n%every == 0 {
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"code":%q,"message":"refused"}}`, code)
				return false
			}
			return true
		}
	}
	tests := []struct {
		name    string
		answer  func(http.ResponseWriter, *http.Request) bool
		fails   []string
		verdict string
	}{
		{"every purchase 401", refuse(http.StatusUnauthorized, "unauthorized", 1), []string{CheckAccepted, CheckReserved},
			"VERDICT: FAIL — requests accepted: 400 of 400 answers (100.0%) were 400/401/403, over 1%: 401 × 400"},
		{"one purchase in 20 is a 400", refuse(http.StatusBadRequest, "invalid_request", 20), []string{CheckAccepted},
			"VERDICT: FAIL — requests accepted: 20 of 400 answers (5.0%) were 400/401/403, over 1%: 400 × 20"},
		{"one in 200 is a 403", refuse(http.StatusForbidden, "not_admitted", 200), nil, "VERDICT: PASS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeSurge(t, 100, tt.answer)
			res, v := runAndVerify(t, srv, Config{
				Target: srv.URL, AdminToken: testAdmin, SaleID: "drop", Users: 400, UserPrefix: "x-", Connections: 4, Seed: 1,
			})
			var failed []string
			for _, c := range v.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if !slices.Equal(failed, tt.fails) {
				t.Errorf("failed checks %q, want %q (codes %v)", failed, tt.fails, res.Codes)
			}
			if line := VerdictLine(v); !strings.HasPrefix(line, tt.verdict) {
				t.Errorf("verdict %q, want it to begin %q", line, tt.verdict)
			}
		})
	}
}

// TestRunLateSendsNotDelivered: one connection to a server that takes
// longer per answer than the shape's gap between sends cannot deliver the
// shape; the result, the summary and the HTML report say so.
func TestRunLateSendsNotDelivered(t *testing.T) {
	srv := fakeSurge(t, 1000, func(w http.ResponseWriter, r *http.Request) bool {
		// Slower than the 1 ms between sends: whatever the machine's
		// speed, the one connection is busy when most sends are due.
		time.Sleep(5 * time.Millisecond)
		return true
	})
	res, _ := runAndVerify(t, srv, Config{
		Target: srv.URL, AdminToken: testAdmin, SaleID: "drop", Users: 100, UserPrefix: "late-", Connections: 1, Seed: 1,
		Mode: OpenLoop, Shape: Constant{PerSecond: 1000, For: 100 * time.Millisecond},
	})
	if res.Client.Late*100 <= 5*res.Sent || res.Client.LateShare != float64(res.Client.Late)/float64(res.Sent) {
		t.Fatalf("%d of %d sends late (share %v): want most", res.Client.Late, res.Sent, res.Client.LateShare)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, res); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"summary": summaryOf(res), "HTML report": html.String()} {
		if !strings.Contains(text, "shape not delivered: ") {
			t.Errorf("the %s does not say the shape was not delivered:\n%s", what, text)
		}
	}
}

// TestRunUnsentNotDelivered: a server that holds every connection past the
// run's end keeps the client from sending most of the shape: the sends it
// made left on time, but 96 of the 100 purchases the shape called for
// never left. The result, the summary and the HTML report must say the
// shape was not delivered, as they do when sends leave late.
func TestRunUnsentNotDelivered(t *testing.T) {
	srv := stub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		time.Sleep(700 * time.Millisecond) // the server is this slow: longer than the run
		reserve(w, r)
	})
	res, _, err := Run(context.Background(), Config{
		Target: srv.URL, SaleID: "s", Users: 1000, Connections: 4, Seed: 1,
		Mode: OpenLoop, Shape: Constant{PerSecond: 200, For: 500 * time.Millisecond}, Duration: 500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Unsent*2 < res.Scheduled {
		t.Fatalf("scheduled %d, sent %d, unsent %d: want most of the shape unsent", res.Scheduled, res.Sent, res.Unsent)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, res); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"summary": summaryOf(res), "HTML report": html.String()} {
		if !strings.Contains(text, "shape not delivered: ") {
			t.Errorf("%d of the %d purchases the shape called for were never sent (%d late sends of %d), "+
				"yet the %s does not say the shape was not delivered", res.Unsent, res.Scheduled, res.Client.Late, res.Sent, what)
		}
	}
}

// TestRunTimeoutsCountInLatency: one buyer in ten gets no answer within the
// request timeout (the server stalls on it); the others are answered at
// once by the real API. Those buyers waited the whole timeout for nothing:
// a latency summary without them says the server answered everyone fast,
// the p99 of a stall that lasts longer than the timeout the best of all.
func TestRunTimeoutsCountInLatency(t *testing.T) {
	const prefix, timeout = "l-", 300 * time.Millisecond
	srv := newServer(t, serverOptions{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/purchases") {
				var n int
				if _, err := fmt.Sscanf(strings.TrimPrefix(r.Header.Get("X-User-ID"), prefix+"u"), "%d", &n); err == nil && n%10 == 0 {
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done(): // the client gave up and closed
					case <-time.After(5 * time.Second):
					}
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}})
	for _, mode := range []Mode{ClosedLoop, OpenLoop} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := Config{Target: srv.URL, AdminToken: testAdmin, CreateSale: true, Stock: 1000, PerUserLimit: 1,
				Users: 60, UserPrefix: prefix, Connections: 8, Timeout: timeout, Seed: 1, Mode: mode}
			if mode == OpenLoop {
				cfg.Shape = Constant{PerSecond: 200, For: 300 * time.Millisecond}
			}
			res, _, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if res.Errors != 6 {
				t.Fatalf("%d transport errors, want the 6 stalled buyers' (codes %v)", res.Errors, res.Codes)
			}
			if got, want := res.Latency.Count, res.Sent; got != want {
				t.Errorf("latency over %d requests, want every one of the %d sent", got, want)
			}
			if p99 := time.Duration(res.Latency.P99 * float64(time.Millisecond)); p99 < timeout {
				t.Errorf("p99 %v with %d of %d requests unanswered after the %v timeout: want at least the timeout",
					p99, res.Errors, res.Sent, timeout)
			}
			var worst float64
			for _, s := range res.Seconds {
				worst = max(worst, s.P99)
			}
			if worst < float64(timeout/time.Millisecond) {
				t.Errorf("the worst second's p99 is %.1f ms: the timed out requests are missing from the seconds %+v", worst, res.Seconds)
			}
		})
	}
}
