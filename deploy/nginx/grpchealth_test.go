package nginx_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestEdgeGRPCHealthCheck: the nodes serve the standard gRPC health
// service (docs/api.md), what a gRPC load balancer asks before it sends a
// connection anywhere. In front of the edge, such a balancer checks the
// edge's gRPC port, which routed SaleService alone: a check got nginx's
// HTML 404, which gRPC reads as UNIMPLEMENTED, and the balancer never let
// the edge in. A check through the edge must be answered by a node as it
// answers one itself: SERVING for the server and for SaleService,
// NOT_FOUND for a service no node serves.
func TestEdgeGRPCHealthCheck(t *testing.T) {
	e := startEdge(t, nil)
	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for _, tc := range []struct {
		service string
		code    codes.Code
	}{
		{"", codes.OK},
		{"surge.v1.SaleService", codes.OK},
		{"no.such.Service", codes.NotFound},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: tc.service})
		cancel()
		if got := status.Code(err); got != tc.code {
			t.Errorf("gRPC health Check(%q) through the edge: %v; want %v, as a node answers it (a balancer checking the edge takes anything else for the edge down)\nnginx:\n%s",
				tc.service, err, tc.code, e.nginxLog())
			continue
		}
		if tc.code == codes.OK && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health Check(%q) through the edge: %v, want SERVING: both nodes serve", tc.service, resp.GetStatus())
		}
	}
}
