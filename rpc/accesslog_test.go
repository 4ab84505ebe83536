package rpc_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/sqlite"
)

// A gRPC call is answered HTTP 200 whether it succeeds or fails: its
// code is the grpc-status trailer. The access log's line of a failed call
// must say how it failed, or an operator reading it sees every refused
// purchase as a success.
func TestAccessLogShowsGRPCStatus(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, st, engine.Config{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	g := rpc.New(eng, rpc.Config{Logger: discard})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: discard, Mount: g.Mount})
	var logs servicetest.Log
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httptest.NewUnstartedServer(surgehttp.Requests(api, surgehttp.RequestOptions{Logger: log, AccessLog: true}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()

	for _, c := range []struct {
		name string
		opt  connect.ClientOption
	}{{"grpc", connect.WithGRPC()}, {"grpc-web", connect.WithGRPCWeb()}} {
		client := surgev1connect.NewSaleServiceClient(h2cClient(), srv.URL, c.opt)
		r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "no-such-sale"})
		r.Header().Set("X-User-ID", "alice")
		r.Header().Set("X-Request-ID", "req-"+c.name)
		_, err := client.Purchase(ctx, r)
		code := connect.CodeOf(err)
		if err == nil || code == connect.CodeUnknown {
			t.Fatalf("%s: a purchase of an unknown sale answered %v", c.name, err)
		}
		var line map[string]any
		deadline := time.Now().Add(10 * time.Second)
		for line == nil && time.Now().Before(deadline) {
			for _, l := range strings.Split(logs.String(), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(l), &rec) == nil && rec["request_id"] == "req-"+c.name {
					line = rec
				}
			}
			if line == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if line == nil {
			t.Fatalf("%s: no access log line: %s", c.name, logs.String())
		}
		if got, want := line["grpc_status"], float64(code); got != want {
			t.Errorf("%s: access log grpc_status = %v, want %v (%s) in %v", c.name, got, want, code, line)
		}
	}
}
