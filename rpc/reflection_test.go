package rpc_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// TestNoServerReflection: docs/api.md says server reflection is not
// served, and that gRPC clients report a reflection call UNIMPLEMENTED
// (tools take the schema from the proto file). What grpcurl's list asks
// must get that, not a reflection answer the docs deny, nor a transport
// error a tool cannot tell from a server that is down.
func TestNoServerReflection(t *testing.T) {
	base := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(grpcConn(t, base)).ServerReflectionInfo(ctx)
	if err == nil {
		err = stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
		})
	}
	if err == nil || errors.Is(err, io.EOF) {
		// A stream the server ended tells its status to Recv only.
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("a reflection call (grpcurl list): %v, want UNIMPLEMENTED as docs/api.md says", err)
	}
}
