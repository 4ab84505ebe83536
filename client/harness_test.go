package client_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/internal/testtoken"
	"github.com/surgehq/surge/sqlite"
	"github.com/surgehq/surge/waitroom"
)

const token = "client-test-admin-token"

var (
	jwtSecret  = []byte("client-test-jwt-secret-of-32-bytes..")
	roomSecret = []byte("client-test waiting-room secret, 32 b")
	hookSecret = "client-test-webhook-secret"
)

// server is the real API over an engine and a SQLite store in a temp
// dir, its requests counted by method and route.
type server struct {
	url    string
	eng    *engine.Engine
	mu     sync.Mutex
	counts map[string]int // "GET /v1/sales/{id}/queue" → requests
	stop   func()         // stops it, as the process exiting would
	conns  *surgehttp.ConnLimiter
}

type serverOptions struct {
	now       func() time.Time // nil: time.Now
	buyerRate engine.RateLimiter
	// wrap puts a handler in front of the API (faults for retry tests).
	wrap func(http.Handler) http.Handler
	// queues holds the waiting rooms' places (nil: in memory; a Redis
	// backend as in cluster mode).
	queues waitroom.Backend
	// connState, when set, is the server's http.Server.ConnState.
	connState func(net.Conn, http.ConnState)
	// dir is the store's data dir ("": a new temp dir) and addr the
	// address to listen on ("": any port): a server started again on
	// both is the same one restarted.
	dir, addr string
	// connLimits, when set, bounds the server's connections as surge
	// serve's listener does (server.conns).
	connLimits *surgehttp.ConnLimits
}

func newServer(t *testing.T, opt serverOptions) *server {
	t.Helper()
	ctx := context.Background()
	if opt.dir == "" {
		opt.dir = t.TempDir()
	}
	st, err := sqlite.Open(ctx, opt.dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	room, err := waitroom.New(waitroom.Config{Secret: roomSecret, Now: opt.now, Backend: opt.queues})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(ctx, st, engine.Config{Now: opt.now, Logger: log, WaitingRoom: room, BuyerRate: opt.buyerRate,
		PurchaseTimeout: time.Minute}) // -race on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: token, JWTSecret: jwtSecret, InsecureUserHeader: true,
		Logger: log, WaitingRoom: room, Payments: surgehttp.Payments{Secrets: []string{hookSecret}}})
	s := &server{eng: eng, counts: map[string]int{}}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.Method+" "+r.URL.Path]++
		s.mu.Unlock()
		api.ServeHTTP(w, r)
	})
	if opt.wrap != nil {
		h = opt.wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = opt.connState
	if opt.addr != "" {
		ln, err := net.Listen("tcp", opt.addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	if opt.connLimits != nil {
		s.conns = surgehttp.LimitConns(srv.Listener, *opt.connLimits)
		srv.Listener = s.conns
		state := opt.connState
		srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
			s.conns.ConnState(c, st)
			if state != nil {
				state(c, st)
			}
		}
	}
	srv.Start()
	// Open queue streams would hold Close until their clients leave.
	var once sync.Once
	s.stop = func() { once.Do(func() { api.CloseStreams(); srv.Close(); eng.Close(); st.Close() }) }
	t.Cleanup(s.stop)
	s.url = srv.URL
	return s
}

// onceStreaming runs do in the background 0.3 s after s first serves the
// room's queue stream: an outage that starts once a buyer follows it.
func onceStreaming(s *server, do func()) {
	go func() {
		for s.count("GET /v1/sales/room/queue/events") == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		do()
	}()
}

func (s *server) count(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[methodPath]
}

// serve runs the real API with the engine's clock now; the client is the
// operator's.
func serve(t *testing.T, now func() time.Time) (*client.Client, *engine.Engine) {
	s := newServer(t, serverOptions{now: now})
	return client.New(s.url, token), s.eng
}

// buyerJWT is a valid HS256 buyer token of user.
func buyerJWT(t *testing.T, user string) string {
	t.Helper()
	return testtoken.Buyer(t, jwtSecret, user)
}

// createSale creates a live sale with stock units and per-user limit.
func createSale(t *testing.T, c *client.Client, id string, stock, limit int64) api.Sale {
	t.Helper()
	s, err := c.CreateSale(t.Context(), api.NewSale{ID: &id, Name: new("Sale " + id), Stock: &stock, PerUserLimit: &limit, PriceCents: new(int64(1500))})
	if err != nil {
		t.Fatalf("create sale %s: %v", id, err)
	}
	return s
}

// exported is the admin export of a sale.
func exported(t *testing.T, c *client.Client, saleID string) []api.Order {
	t.Helper()
	var out []api.Order
	if err := c.Orders(t.Context(), saleID, func(o api.Order) error { out = append(out, o); return nil }); err != nil {
		t.Fatalf("export %s: %v", saleID, err)
	}
	return out
}

// annInRoom creates the sale "room" of 10 units starting at start, with a
// FIFO waiting room admitting one buyer a second for ticketSeconds each,
// and has buyer ann join it; her place is waiting.
func annInRoom(ctx context.Context, t *testing.T, admin *client.Client, start time.Time, ticketSeconds int64) (*client.Client, api.Queue) {
	t.Helper()
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("room"), Name: new("Room"), Stock: new(int64(10)),
		StartsAt: new(api.FormatTime(start)), WaitingRoom: &api.NewWaitingRoom{
			AdmitPerSecond: new(int64(1)), Policy: new("fifo"), TicketSeconds: new(ticketSeconds)}}); err != nil {
		t.Fatal(err)
	}
	ann := admin.AsUser("ann")
	q, err := ann.JoinQueue(ctx, "room")
	if err != nil || q.Status != client.QueueWaiting {
		t.Fatalf("join: %+v, %v", q, err)
	}
	return ann, q
}
