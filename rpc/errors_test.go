package rpc_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// refusingSvc is the engine, except that every purchase is refused with
// err (what the engine answers when a sale's inbox is full, CoDel sheds,
// the engine closes or a commit wait runs out).
type refusingSvc struct {
	*engine.Engine
	err error
}

func (s refusingSvc) Purchase(context.Context, engine.PurchaseRequest) (surge.Outcome, error) {
	return surge.Outcome{}, s.err
}

// retryDelay is the wait of err's google.rpc.RetryInfo, 0 without one.
func retryDelay(ce *connect.Error) float64 {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				return ri.GetRetryDelay().AsDuration().Seconds()
			}
		}
	}
	return 0
}

// A retryable refusal that names no wait is answered over HTTP with
// Retry-After: 1; over gRPC it carries a RetryInfo of as much
// (docs/api.md#grpc), not none.
func TestRetryableErrorsCarryRetryInfo(t *testing.T) {
	for _, refusal := range []*surge.Error{surge.ErrOverloaded, surge.ErrUnavailable, engine.ErrTimeout,
		{Code: surge.CodeRateLimited, Message: "slow down"}} {
		t.Run(refusal.Error(), func(t *testing.T) {
			base := serverOver(t, func(e *engine.Engine) surgehttp.Service { return refusingSvc{e, refusal} }, nil)
			createSale(t, base, "drop", 10)
			ctx := context.Background()

			hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/drop/purchases", nil)
			hr.Header.Set("X-User-ID", "alice")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("HTTP: %d Retry-After %q, want Retry-After: 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}

			c := surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithGRPC())
			req := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "k1"})
			req.Header().Set("X-User-ID", "alice")
			_, err = c.Purchase(ctx, req)
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("gRPC: %v, want an error", err)
			}
			if got := retryDelay(ce); got != 1 {
				t.Errorf("gRPC %v (%s): RetryInfo of %vs, want 1s as HTTP's Retry-After: 1",
					ce.Code(), ce.Meta().Get(rpc.CodeHeader), got)
			}
		})
	}
}
