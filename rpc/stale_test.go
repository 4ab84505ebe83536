package rpc_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/servicetest"
)

// clusterServer runs the HTTP API with the gRPC API mounted over a
// cluster-mode engine (real Redis and PostgreSQL, each reached through a
// fault proxy the test can cut), its figures refreshed every second, so
// they are reported stale 3 s after the last refresh that worked. Not
// less: a refresh round (the sales' listing from PostgreSQL, each sale's
// figures from Redis) on a loaded machine took over the 150 ms a 50 ms
// interval allowed, and the figures of a node with both stores up were
// reported stale, failing the test's first looks, which want them
// current.
func clusterServer(t *testing.T) (base string, redisPx, pgPx *servicetest.Proxy) {
	t.Helper()
	ns := servicetest.Namespace(t)
	redisPx = servicetest.RedisProxy(t)
	pgURL, err := url.Parse(servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pgPx = servicetest.NewProxy(t, pgURL.Host)
	pgURL.Host = pgPx.Addr
	log := slog.New(slog.DiscardHandler)
	cfg := cluster.Config{Prefix: ns, Schema: ns, CallTimeout: time.Second, Logger: log}
	var st *cluster.Store
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		st, err = cluster.Open(ctx, "redis://"+redisPx.Addr+"/0", pgURL.String(), cfg)
		cancel()
		if err == nil {
			break
		}
		if surge.ErrorCode(err) != surge.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("cluster.Open (are Redis and PostgreSQL up? run scripts/services.sh): %v", err)
		}
	}
	eng, err := engine.Open(context.Background(), st, engine.Config{Logger: log, SyncInterval: time.Second, StoreTimeout: 2 * time.Second})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	// The default heartbeat (15 s): a change of the flag must be sent as
	// a change, not with the next heartbeat.
	g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount})
	return serveH2C(t, api, g.Close, func() { eng.Close(); st.Close() }, false), redisPx, pgPx
}

// staleOf reads m's stale field by name, so that a message lacking it
// fails the test saying so rather than failing to compile.
func staleOf(t *testing.T, m proto.Message) bool {
	t.Helper()
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("stale")
	if fd == nil {
		t.Fatalf("%s has no stale field: a caller cannot tell figures the node could not refresh from current ones", r.Descriptor().FullName())
	}
	return r.Get(fd).Bool()
}

// httpStale is what GET /v1/sales/{id} says of the sale's figures.
func httpStale(t *testing.T, base, id string) bool {
	t.Helper()
	resp, err := http.Get(base + "/v1/sales/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Stale bool `json:"stale"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sales/%s: %s", id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Stale
}

// TestWatchSaleReportsStaleFigures: in cluster mode, while the node cannot
// refresh a sale's figures (Redis and PostgreSQL unreachable), GET
// /v1/sales/{id} flags them "stale": true, but WatchSale streamed them as
// if current (its message had no stale field), so a caller could not tell
// a sale frozen by an outage from one nobody buys. GetSale over gRPC
// carries the flag; WatchSale now does too, sent as soon as it changes
// both ways.
func TestWatchSaleReportsStaleFigures(t *testing.T) {
	base, redisPx, pgPx := clusterServer(t)
	const id = "frozen"
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: proto.String(id), Name: "Frozen", Stock: 10})
		req.Header().Set("Authorization", "Bearer "+adminToken)
		_, err := c.CreateSale(context.Background(), req)
		if err == nil || connect.CodeOf(err) == connect.CodeAlreadyExists {
			break // AlreadyExists: an earlier try landed unheard
		}
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	conn, err := grpc.NewClient(base[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type watch struct {
		name string
		msgs chan *surgev1.WatchSaleResponse
	}
	// Each stream's messages, read as they come.
	open := func(name string, recv func() (*surgev1.WatchSaleResponse, error)) watch {
		w := watch{name, make(chan *surgev1.WatchSaleResponse, 64)}
		go func() {
			defer close(w.msgs)
			for {
				m, err := recv()
				if err != nil {
					return
				}
				select {
				case w.msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
		return w
	}
	gs, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "WatchSale", ServerStreams: true}, svc+"WatchSale")
	if err != nil {
		t.Fatal(err)
	}
	if err := gs.SendMsg(&surgev1.WatchSaleRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if err := gs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	cs, err := surgev1connect.NewSaleServiceClient(&http.Client{Transport: &http.Transport{}}, base, connect.WithProtoJSON()).
		WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	watches := []watch{
		open("grpc-go", func() (*surgev1.WatchSaleResponse, error) {
			m := new(surgev1.WatchSaleResponse)
			return m, gs.RecvMsg(m)
		}),
		open("Connect JSON", func() (*surgev1.WatchSaleResponse, error) {
			if cs.Receive() {
				return cs.Msg(), nil
			}
			return nil, context.Canceled
		}),
	}
	// next waits up to d for w's next message.
	next := func(w watch, d time.Duration, what string) *surgev1.WatchSaleResponse {
		t.Helper()
		select {
		case m, ok := <-w.msgs:
			if !ok {
				t.Fatalf("%s: WatchSale ended, waiting for %s", w.name, what)
			}
			return m
		case <-time.After(d):
			t.Fatalf("%s: no WatchSale message within %v, waiting for %s", w.name, d, what)
			return nil
		}
	}
	// wantStale waits for w's message flagged stale as want.
	wantStale := func(w watch, want bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			m := next(w, time.Until(deadline), what)
			if staleOf(t, m) == want {
				if m.Remaining != 10 || m.Status != "live" {
					t.Errorf("%s: %v; want the last known figures, 10 live", w.name, m)
				}
				return
			}
		}
	}
	getSale := func() *surgev1.Sale {
		t.Helper()
		r, err := invoke[surgev1.GetSaleRequest, surgev1.GetSaleResponse](ctx, conn, "GetSale", &surgev1.GetSaleRequest{Id: id})
		if err != nil {
			t.Fatalf("GetSale: %v", err)
		}
		return r.Sale
	}

	for _, w := range watches {
		if m := next(w, 10*time.Second, "the first figures"); staleOf(t, m) || m.Remaining != 10 || m.Status != "live" {
			t.Fatalf("%s: first message %v; want 10 live, current", w.name, m)
		}
	}
	if s := getSale(); staleOf(t, s) {
		t.Fatalf("GetSale of a fresh sale: %v; want current figures", s)
	}

	// Redis and PostgreSQL gone: the node keeps its last figures, stale.
	redisPx.Cut()
	pgPx.Cut()
	for deadline := time.Now().Add(20 * time.Second); !httpStale(t, base, id); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("GET /v1/sales/frozen never said stale with Redis and PostgreSQL cut")
		}
	}
	if s := getSale(); !staleOf(t, s) || s.Remaining != 10 {
		t.Errorf("GetSale while GET /v1/sales says stale: %v; want stale, 10 left", s)
	}
	for _, w := range watches {
		wantStale(w, true, "figures flagged stale")
	}

	// Back: the next refresh makes them current again, and says so.
	redisPx.Restore()
	pgPx.Restore()
	for deadline := time.Now().Add(30 * time.Second); httpStale(t, base, id); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("GET /v1/sales/frozen still stale 30 s after Redis and PostgreSQL came back")
		}
	}
	for _, w := range watches {
		wantStale(w, false, "current figures again")
	}
}
