package rpc_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/engine"
	surgehttp "github.com/surgehq/surge/http"
)

// settableReady is the engine whose readiness the test sets, as a node
// draining or without its store reports it.
type settableReady struct {
	*engine.Engine
	down *atomic.Bool
}

func (s settableReady) Ready() bool { return !s.down.Load() && s.Engine.Ready() }

// TestHealthAnswersReadiness: grpc.health.v1.Health/Check, what gRPC load
// balancers and Kubernetes' grpc probes call, is served on the API's
// listener and answers as /readyz does: SERVING while the node is ready,
// NOT_SERVING once it is not, NOT_FOUND for a service it does not serve;
// a probe is exempt from the per-address limit, as /readyz is. The
// server had no health service: every check failed UNIMPLEMENTED.
func TestHealthAnswersReadiness(t *testing.T) {
	var down atomic.Bool
	base := serverOver(t, func(e *engine.Engine) surgehttp.Service { return settableReady{e, &down} },
		func(c *surgehttp.Config) {
			c.Protection.IP = admission.NewKeyed(rate.Every(time.Hour), 1, 100, time.Hour)
		})
	hc := healthpb.NewHealthClient(grpcConn(t, base))
	check := func(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		return resp.GetStatus(), err
	}
	// More probes than the address's burst of one request.
	for i := range 3 {
		for _, service := range []string{"", "surge.v1.SaleService"} {
			st, err := check(service)
			if err != nil || st != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("probe %d of %q on a ready node: %v, %v; want SERVING", i, service, st, err)
			}
		}
	}
	if _, err := check("grpc.reflection.v1.ServerReflection"); status.Code(err) != codes.NotFound {
		t.Errorf("check of a service not served: %v, want NOT_FOUND", err)
	}
	down.Store(true)
	if st, err := check(""); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("probe of a node not ready: %v, %v; want NOT_SERVING", st, err)
	}
}

// TestHealthUnknownPathAnswersJSON: a path under the health service's
// prefix that names no method of it is answered 404 not_found in the
// API's JSON error shape, as any unknown path and one under SaleService's
// prefix are (docs/api.md: every error has one shape). net/http's mux
// inside grpchealth answered it in plain text, "404 page not found".
func TestHealthUnknownPathAnswersJSON(t *testing.T) {
	base := server(t)
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/grpc.health.v1.Health/List"},
		{http.MethodGet, "/grpc.health.v1.Health/"},
		{http.MethodPost, "/grpc.health.v1.Health/Check/more"},
	} {
		status, ctype, code, b := errorAnswer(t, http.DefaultClient, c.method, base+c.path, "application/json")
		if status != http.StatusNotFound || code != "not_found" {
			t.Errorf("%s %s: %d %s %q; want 404 with the JSON error not_found", c.method, c.path, status, ctype, b)
		}
	}
}
