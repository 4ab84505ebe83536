package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// TestTraceGRPCCalls: a gRPC call's span is named by its procedure, as an
// HTTP request's is by its route (docs/observability.md), and carries the
// call's code; a call that fails on the server's side (UNAVAILABLE, the
// HTTP API's 503) is marked failed, as otelhttp marks a 5xx. Every gRPC
// span was named "/surge.v1.SaleService/", the service's prefix on the
// mux, whatever the call, and gRPC answers every call HTTP 200 (its code
// in a trailer), so no failed gRPC call's span said it failed.
func TestTraceGRPCCalls(t *testing.T) {
	rc := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.url)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	const token = "trace-grpc-admin-token"
	// One stream slot in all: a second WatchSale is refused UNAVAILABLE.
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--admin-token", token, "--insecure-user-header",
		"--log-level", "error", "--data-dir", t.TempDir(), "--waiting-room-streams", "1")
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	c := surgev1connect.NewSaleServiceClient(h2c, srv.base, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	id := "traced"
	create := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Traced", Stock: 10})
	create.Header().Set("Authorization", "Bearer "+token)
	if _, err := c.CreateSale(ctx, create); err != nil {
		t.Fatalf("CreateSale: %v", err)
	}
	buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: id})
	buy.Header().Set("X-User-ID", "alice")
	if _, err := c.Purchase(ctx, buy); err != nil {
		t.Fatalf("Purchase: %v", err)
	}
	held, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: id}))
	if err != nil || !held.Receive() {
		t.Fatalf("WatchSale: %v %v", err, held.Err())
	}
	refused, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: id}))
	if err == nil {
		refused.Receive()
		err = refused.Err()
		refused.Close()
	}
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("a second WatchSale with one stream slot in all: %v, want UNAVAILABLE", err)
	}
	held.Close()
	// The held stream's span ends once the server has seen its client go:
	// stopped before that, the server ends the stream itself, UNAVAILABLE
	// (a server going away), a failed span this test does not ask about.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, s := range rc.all() {
			if s.Name == "/surge.v1.SaleService/WatchSale" {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WatchSale spans exported 10 s after the held stream's client left; want 2", n)
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, srv.stderr)
	}

	spans := rc.all()
	named := map[string][]*span{}
	var failed []*span
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "/surge.v1.SaleService/") {
			named[s.Name] = append(named[s.Name], s)
			if s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				failed = append(failed, s)
			}
		}
	}
	for name, want := range map[string]int{
		"/surge.v1.SaleService/CreateSale": 1, "/surge.v1.SaleService/Purchase": 1, "/surge.v1.SaleService/WatchSale": 2,
	} {
		if len(named[name]) != want {
			t.Errorf("%d spans named %q, want %d (one per call); spans: %v", len(named[name]), name, want, names(spans))
		}
	}
	if len(failed) != 1 || failed[0].Name != "/surge.v1.SaleService/WatchSale" || grpcCode(failed[0]) != int64(connect.CodeUnavailable) {
		var got []string
		for _, s := range failed {
			got = append(got, s.Name)
		}
		t.Errorf("gRPC spans marked failed: %q; want the refused WatchSale's alone, with rpc.grpc.status_code %d (UNAVAILABLE)",
			got, connect.CodeUnavailable)
	}
	for _, s := range named["/surge.v1.SaleService/Purchase"] {
		if grpcCode(s) != 0 {
			t.Errorf("the purchase's span has rpc.grpc.status_code %d, want 0 (OK)", grpcCode(s))
		}
	}
}

// grpcCode is the rpc.grpc.status_code of s, -1 when it has none.
func grpcCode(s *span) int64 {
	for _, a := range s.Attributes {
		if a.Key == "rpc.grpc.status_code" {
			return a.Value.GetIntValue()
		}
	}
	return -1
}
