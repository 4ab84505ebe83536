package rpc_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// TestAdminListenerStreamsOwnBound: with a listener of the operators' own
// (--admin-addr), its long-lived streams (WatchSale, a queue's events)
// counted against the same bounds as the public listener's: buyers
// holding every stream the public API allows left the operator's
// WatchSale on the private listener refused UNAVAILABLE (overloaded).
// Each listener now counts its streams in buckets of its own, at the same
// bounds, as its per-address rate limit does.
func TestAdminListenerStreamsOwnBound(t *testing.T) {
	eng, log := meteredEngine(t, prometheus.NewRegistry())
	g := rpc.New(eng, rpc.Config{Logger: log, WatchTick: 10 * time.Millisecond})
	api := surgehttp.New(eng, surgehttp.Config{AdminToken: adminToken, InsecureUserHeader: true, Logger: log,
		Mount: g.Mount, MaxQueueStreams: 2})
	public := httptest.NewServer(api.Public())
	defer public.Close()
	admin := httptest.NewServer(api.Admin())
	defer admin.Close()
	defer g.Close()
	createSale(t, admin.URL, "drop", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := func(srv *httptest.Server) (*connect.ServerStreamForClient[surgev1.WatchSaleResponse], error) {
		c := surgev1connect.NewSaleServiceClient(srv.Client(), srv.URL)
		s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
		if err == nil && s.Receive() {
			return s, nil
		}
		if err == nil {
			err = s.Err()
			s.Close()
		}
		return nil, err
	}
	for range 2 {
		s, err := watch(public)
		if err != nil {
			t.Fatalf("a buyer's WatchSale on the public listener: %v", err)
		}
		defer s.Close()
	}
	if _, err := watch(public); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("a third WatchSale on the public listener: %v; want UNAVAILABLE (its bound is 2)", err)
	}
	s, err := watch(admin)
	if err != nil {
		t.Fatalf("the operator's WatchSale on the admin listener while buyers hold the public one's streams: %v; want the stream", err)
	}
	defer s.Close()
}
