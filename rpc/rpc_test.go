package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/sqlite"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const adminToken = "rpc-test-admin-token"

// server runs the HTTP API with the gRPC API mounted on a real listener
// that speaks HTTP/1.1 and HTTP/2 without TLS, as surge serve does.
func server(t testing.TB) (base string) {
	t.Helper()
	return serverOver(t, nil, nil)
}

// serverOver is server over wrap of the engine (nil: the engine itself),
// for tests that need the engine to answer in a way it rarely does, with
// the HTTP API's configuration changed by tune (unless nil).
func serverOver(t testing.TB, wrap func(*engine.Engine) surgehttp.Service, tune func(*surgehttp.Config)) (base string) {
	t.Helper()
	return serverAt(t, t.TempDir(), wrap, tune)
}

// serverAt is serverOver with its SQLite database in dir.
func serverAt(t testing.TB, dir string, wrap func(*engine.Engine) surgehttp.Service, tune func(*surgehttp.Config)) (base string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var svc surgehttp.Service = eng
	if wrap != nil {
		svc = wrap(eng)
	}
	g := rpc.New(svc, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond})
	cfg := surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log, Mount: g.Mount}
	if tune != nil {
		tune(&cfg)
	}
	api := surgehttp.New(svc, cfg)
	return serveH2C(t, api, g.Close, func() { eng.Close(); st.Close() }, true)
}

// serveH2C serves api over HTTP/1.1 and unencrypted HTTP/2 on a free
// loopback port until the test ends, then shuts it down (onShutdown ends
// the streams) and runs closeAll; strict fails the test when the
// shutdown timed out (a stream held it).
func serveH2C(t testing.TB, api http.Handler, onShutdown, closeAll func(), strict bool) string {
	t.Helper()
	srv, base := startH2C(t, api, nil, onShutdown)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && strict {
			t.Errorf("shutdown: %v (a WatchSale stream held it?)", err)
		}
		closeAll()
	})
	return base
}

// startH2C serves api over HTTP/1.1 and unencrypted HTTP/2 on ln (a free
// loopback port when nil), onShutdown registered for its shutdown, and
// returns the server, which the caller stops, and its base URL.
func startH2C(t testing.TB, api http.Handler, ln net.Listener, onShutdown func()) (*http.Server, string) {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: api, Protocols: &p, WriteTimeout: 30 * time.Second}
	srv.RegisterOnShutdown(onShutdown)
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String()
}

// createSale creates sale id with stock units over Connect, as the admin.
func createSale(t testing.TB, base, id string, stock int64) {
	t.Helper()
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Sale " + id, Stock: stock})
	req.Header().Set("Authorization", "Bearer "+adminToken)
	if _, err := c.CreateSale(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// h2cClient speaks HTTP/2 without TLS, as gRPC needs.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// grpcConn is a real gRPC client (grpc-go) over h2c.
func grpcConn(t *testing.T, base string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

const svc = "/surge.v1.SaleService/"

func invoke[Req, Resp any](ctx context.Context, conn *grpc.ClientConn, method string, req *Req, md ...string) (*Resp, error) {
	resp := new(Resp)
	ctx = metadata.AppendToOutgoingContext(ctx, md...)
	err := conn.Invoke(ctx, svc+method, req, resp)
	return resp, err
}

// wantStatus checks a grpc-go error's code and its Surge code (ErrorInfo
// reason and the Surge-Code trailer).
func wantStatus(t *testing.T, what string, err error, code codes.Code, surgeCode string, trailer metadata.MD) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Errorf("%s: %v, want %v", what, err, code)
		return
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == rpc.ErrorDomain {
			reason = info.Reason
		}
	}
	if reason != surgeCode {
		t.Errorf("%s: ErrorInfo reason %q, want %q", what, reason, surgeCode)
	}
	if trailer != nil {
		if got := trailer.Get(strings.ToLower(rpc.CodeHeader)); len(got) != 1 || got[0] != surgeCode {
			t.Errorf("%s: %s trailer %q, want %q", what, rpc.CodeHeader, got, surgeCode)
		}
	}
}

// The gRPC API with grpc-go: auth as HTTP's, the same pipeline and
// guarantees, and the HTTP API's codes mapped to gRPC's.
func TestGRPCClient(t *testing.T) {
	base := server(t)
	conn := grpcConn(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	asAdmin := []string{"authorization", "Bearer " + adminToken}
	buyer := func(u string) []string { return []string{"x-user-id", u} }

	newSale := &surgev1.CreateSaleRequest{Id: new("drop"), Name: "Drop", Stock: 2, PriceCents: new(int64(500))}
	_, err := invoke[surgev1.CreateSaleRequest, surgev1.CreateSaleResponse](ctx, conn, "CreateSale", newSale)
	wantStatus(t, "CreateSale without a token", err, codes.Unauthenticated, "unauthenticated", nil)
	_, err = invoke[surgev1.CreateSaleRequest, surgev1.CreateSaleResponse](ctx, conn, "CreateSale", newSale, buyer("alice")...)
	wantStatus(t, "CreateSale as a buyer", err, codes.PermissionDenied, "unauthenticated", nil)
	created, err := invoke[surgev1.CreateSaleRequest, surgev1.CreateSaleResponse](ctx, conn, "CreateSale", newSale, asAdmin...)
	if err != nil || created.Sale.GetId() != "drop" || created.Sale.GetRemaining() != 2 || created.Sale.GetStatus() != "live" || created.Sale.GetPerUserLimit() != 1 {
		t.Fatalf("CreateSale: %v %v", created, err)
	}
	var trailer metadata.MD
	_, err = invoke[surgev1.CreateSaleRequest, surgev1.CreateSaleResponse](ctx, conn, "CreateSale", newSale, asAdmin...)
	wantStatus(t, "CreateSale again", err, codes.AlreadyExists, "sale_exists", nil)
	_, err = invoke[surgev1.CreateSaleRequest, surgev1.CreateSaleResponse](ctx, conn, "CreateSale", &surgev1.CreateSaleRequest{Name: "No stock"}, asAdmin...)
	wantStatus(t, "CreateSale without stock", err, codes.InvalidArgument, "invalid_request", nil)

	got, err := invoke[surgev1.GetSaleRequest, surgev1.GetSaleResponse](ctx, conn, "GetSale", &surgev1.GetSaleRequest{Id: "drop"})
	if err != nil || got.Sale.GetName() != "Drop" {
		t.Fatalf("GetSale: %v %v", got, err)
	}
	_, err = invoke[surgev1.GetSaleRequest, surgev1.GetSaleResponse](ctx, conn, "GetSale", &surgev1.GetSaleRequest{Id: "no/such"})
	wantStatus(t, "GetSale of a bad id", err, codes.NotFound, "sale_not_found", nil)

	buy := func(user, key string) (*surgev1.PurchaseResponse, metadata.MD, error) {
		var tr metadata.MD
		resp := new(surgev1.PurchaseResponse)
		err := conn.Invoke(metadata.AppendToOutgoingContext(ctx, buyer(user)...), svc+"Purchase",
			&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: key}, resp, grpc.Trailer(&tr))
		return resp, tr, err
	}
	first, _, err := buy("alice", "a1")
	if err != nil || first.Order.GetStatus() != "reserved" || first.Replayed {
		t.Fatalf("Purchase: %v %v", first, err)
	}
	again, _, err := buy("alice", "a1")
	if err != nil || again.Order.GetId() != first.Order.GetId() || !again.Replayed {
		t.Fatalf("Purchase replay: %v %v, want order %s replayed", again, err, first.Order.GetId())
	}
	_, trailer, err = buy("alice", "a2")
	wantStatus(t, "Purchase over the limit", err, codes.FailedPrecondition, "limit_reached", trailer)
	if _, _, err := buy("bob", ""); err != nil {
		t.Fatal(err)
	}
	_, trailer, err = buy("carol", "")
	wantStatus(t, "Purchase sold out", err, codes.FailedPrecondition, "sold_out", trailer)
	_, err = invoke[surgev1.PurchaseRequest, surgev1.PurchaseResponse](ctx, conn, "Purchase", &surgev1.PurchaseRequest{SaleId: "drop"}, asAdmin...)
	wantStatus(t, "Purchase with the admin token", err, codes.Unauthenticated, "unauthenticated", nil)
	_, err = invoke[surgev1.PurchaseRequest, surgev1.PurchaseResponse](ctx, conn, "Purchase", &surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: strings.Repeat("k", 129)}, buyer("dave")...)
	wantStatus(t, "Purchase with a bad key", err, codes.InvalidArgument, "invalid_request", nil)

	id := first.Order.GetId()
	o, err := invoke[surgev1.GetOrderRequest, surgev1.GetOrderResponse](ctx, conn, "GetOrder", &surgev1.GetOrderRequest{Id: id}, buyer("alice")...)
	if err != nil || o.Order.GetUserId() != "alice" || o.Order.GetIdempotencyKey() != "a1" {
		t.Fatalf("GetOrder: %v %v", o, err)
	}
	_, err = invoke[surgev1.GetOrderRequest, surgev1.GetOrderResponse](ctx, conn, "GetOrder", &surgev1.GetOrderRequest{Id: id}, buyer("bob")...)
	wantStatus(t, "GetOrder of another buyer's order", err, codes.NotFound, "order_not_found", nil)
	c, err := invoke[surgev1.CancelOrderRequest, surgev1.CancelOrderResponse](ctx, conn, "CancelOrder", &surgev1.CancelOrderRequest{Id: id}, asAdmin...)
	if err != nil || c.Order.GetStatus() != "cancelled" {
		t.Fatalf("CancelOrder: %v %v", c, err)
	}
	_, err = invoke[surgev1.CancelOrderRequest, surgev1.CancelOrderResponse](ctx, conn, "CancelOrder", &surgev1.CancelOrderRequest{Id: id}, buyer("alice")...)
	wantStatus(t, "CancelOrder again", err, codes.FailedPrecondition, "not_cancellable", nil)

	page, err := invoke[surgev1.ListSalesRequest, surgev1.ListSalesResponse](ctx, conn, "ListSales", &surgev1.ListSalesRequest{Limit: 5})
	if err != nil || len(page.Sales) != 1 || page.NextCursor != "" {
		t.Fatalf("ListSales: %v %v", page, err)
	}
	_, err = invoke[surgev1.ListSalesRequest, surgev1.ListSalesResponse](ctx, conn, "ListSales", &surgev1.ListSalesRequest{Cursor: "junk"})
	wantStatus(t, "ListSales with a bad cursor", err, codes.InvalidArgument, "invalid_request", nil)

	// WatchSale: the figures at once, then each change (the cancel gave a
	// unit back; a purchase over HTTP takes it).
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, svc+"WatchSale")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&surgev1.WatchSaleRequest{Id: "drop"}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	recv := func() *surgev1.WatchSaleResponse {
		t.Helper()
		m := new(surgev1.WatchSaleResponse)
		if err := stream.RecvMsg(m); err != nil {
			t.Fatalf("WatchSale: %v", err)
		}
		return m
	}
	if m := recv(); m.Remaining != 1 || m.Status != "live" {
		t.Fatalf("WatchSale first message: %v, want 1 live", m)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/drop/purchases", nil)
	req.Header.Set("X-User-ID", "erin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("HTTP purchase: %v %v", resp, err)
	}
	resp.Body.Close()
	if m := recv(); m.Remaining != 0 || m.Status != "sold_out" {
		t.Fatalf("WatchSale after the HTTP purchase: %v, want 0 sold_out", m)
	}
}

// The Connect client (connect-go), in each of its protocols: the same
// answers, errors with the Surge code, and WatchSale's stream; gRPC and
// HTTP purchases of one sale share its stock exactly.
func TestConnectClient(t *testing.T) {
	base := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h2c := h2cClient()
	clients := map[string]surgev1connect.SaleServiceClient{
		"connect": surgev1connect.NewSaleServiceClient(http.DefaultClient, base),
		"grpc":    surgev1connect.NewSaleServiceClient(h2c, base, connect.WithGRPC()),
		"grpcweb": surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithGRPCWeb()),
	}
	admin := func(r interface{ Header() http.Header }) { r.Header().Set("Authorization", "Bearer "+adminToken) }
	n := 0
	for name, c := range clients {
		n++
		id := fmt.Sprintf("sale-%d", n)
		req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Sale " + name, Stock: 40, PerUserLimit: new(int64(1))})
		admin(req)
		if _, err := c.CreateSale(ctx, req); err != nil {
			t.Fatalf("%s: CreateSale: %v", name, err)
		}
		_, err := c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: "nope"}))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("%s: GetSale(nope) = %v, want not_found", name, err)
		}
		var ce *connect.Error
		if errors.As(err, &ce) {
			if got := ce.Meta().Get(rpc.CodeHeader); got != "sale_not_found" {
				t.Errorf("%s: %s = %q, want sale_not_found", name, rpc.CodeHeader, got)
			}
		}

		// 60 buyers for 40 units, half over this protocol, half over
		// HTTP, at once: exactly 40 reserved.
		var reserved, soldOut atomic.Int64
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				user := fmt.Sprintf("u%d", i)
				if i%2 == 0 {
					r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: id, IdempotencyKey: user})
					r.Header().Set("X-User-ID", user)
					_, err := c.Purchase(ctx, r)
					switch {
					case err == nil:
						reserved.Add(1)
					case connect.CodeOf(err) == connect.CodeFailedPrecondition:
						soldOut.Add(1)
					default:
						t.Errorf("%s: purchase: %v", name, err)
					}
					return
				}
				hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/"+id+"/purchases", nil)
				hr.Header.Set("X-User-ID", user)
				resp, err := http.DefaultClient.Do(hr)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusCreated:
					reserved.Add(1)
				case http.StatusConflict:
					soldOut.Add(1)
				default:
					t.Errorf("HTTP purchase: %d", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if reserved.Load() != 40 || soldOut.Load() != 20 {
			t.Errorf("%s: %d reserved, %d sold out; want 40 and 20", name, reserved.Load(), soldOut.Load())
		}

		stream, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: id}))
		if err != nil {
			t.Fatalf("%s: WatchSale: %v", name, err)
		}
		if !stream.Receive() || stream.Msg().Remaining != 0 || stream.Msg().Status != "sold_out" {
			t.Errorf("%s: WatchSale: %v %v, want 0 sold_out", name, stream.Msg(), stream.Err())
		}
		stream.Close()
	}
}

// A google.protobuf.Timestamp whose nanos lie outside 0..999,999,999 is not
// a time (the type's own contract, and what timestamppb's CheckValid
// refuses): the HTTP API refuses a starts_at or ends_at that is not an
// RFC 3339 time with 400 invalid_request, and the gRPC API must refuse
// such a Timestamp with INVALID_ARGUMENT, creating nothing, not read it as
// another instant (nanos -1 a nanosecond before, 1.5e9 a second and a half
// after).
func TestCreateSaleRefusesInvalidTimestamp(t *testing.T) {
	base := server(t)
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	start := time.Date(2031, 1, 1, 10, 0, 0, 0, time.UTC).Unix()
	for i, c2 := range []struct {
		name        string
		starts, end *timestamppb.Timestamp
	}{
		{"starts_at nanos -1", &timestamppb.Timestamp{Seconds: start, Nanos: -1}, nil},
		{"starts_at nanos 1.5e9", &timestamppb.Timestamp{Seconds: start, Nanos: 1_500_000_000}, nil},
		{"ends_at nanos 1.5e9", &timestamppb.Timestamp{Seconds: start}, &timestamppb.Timestamp{Seconds: start + 60, Nanos: 1_500_000_000}},
	} {
		id := []string{"n1", "n2", "n3"}[i]
		req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Sale", Stock: 5, StartsAt: c2.starts, EndsAt: c2.end})
		req.Header().Set("Authorization", "Bearer "+adminToken)
		res, err := c.CreateSale(context.Background(), req)
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			var got string
			if res != nil {
				s := res.Msg.Sale
				got = s.StartsAt.AsTime().Format(time.RFC3339Nano)
				if s.EndsAt != nil {
					got += " to " + s.EndsAt.AsTime().Format(time.RFC3339Nano)
				}
			}
			t.Errorf("%s: %v (sale %s), want invalid_argument", c2.name, err, got)
		}
	}
}
