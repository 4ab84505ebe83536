package rpc

import (
	"context"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
)

// maxHealthMessage bounds a health check's request, a service name.
const maxHealthMessage = 1024

// health serves grpc.health.v1.Health, what gRPC load balancers and
// Kubernetes' grpc probes ask: without it a gRPC client's health check
// found no service and took the node out, or never in. Its Check is
// exempt from the per-address limit, as /readyz is.
func (s *Service) health() surgehttp.Mounted {
	path, h := grpchealth.NewHandler(readiness{s.svc},
		boundedGzip(maxHealthMessage), connect.WithReadMaxBytes(maxHealthMessage))
	methods := map[string]bool{path + "Check": true, path + "Watch": true}
	return surgehttp.Mounted{Pattern: path, Probe: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !methods[r.URL.Path] {
			// grpchealth's mux answers a path it lacks in plain text; the
			// API answers every unknown path in its JSON shape.
			surgehttp.WriteError(w, http.StatusNotFound, "not_found", "no such endpoint")
			return
		}
		// As SaleService's calls: connect-go reads a message over the
		// bound to its end (and inflates all of a compressed one) to tell
		// its size, and a check, exempt from the per-address limit, kept
		// a handler reading a gigabyte declared or trickled in for as
		// long as the client sent. It reads at most the bound now, and
		// refuses past it at once.
		boundBody(w, r, maxHealthMessage)
		h.ServeHTTP(w, r)
	})}
}

// readiness answers Check as GET /readyz answers: SERVING while the node
// takes purchases, NOT_SERVING while it drains, shuts down or has lost
// its store, for the whole server ("") and for SaleService alike; any
// other service is NOT_FOUND, as the protocol says.
type readiness struct{ svc surgehttp.Service }

func (r readiness) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && req.Service != surgev1connect.SaleServiceName {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if !r.svc.Ready() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
