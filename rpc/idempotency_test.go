package rpc_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// TestIdempotencyKeyHeader: a Purchase that carries its key as the HTTP
// API's Idempotency-Key header (gRPC metadata), not in idempotency_key,
// is keyed by it: its retry replays the first purchase instead of buying
// again. A header that disagrees with the field, or two headers, are
// refused before anything is reserved, as the HTTP API refuses two.
func TestIdempotencyKeyHeader(t *testing.T) {
	base := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := map[string]surgev1connect.SaleServiceClient{
		"connect": surgev1connect.NewSaleServiceClient(http.DefaultClient, base),
		"grpc":    surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithGRPC()),
		"grpcweb": surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithGRPCWeb()),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			id := "key-header-" + name
			sale := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "Sale " + name, Stock: 10, PerUserLimit: new(int64(5))})
			sale.Header().Set("Authorization", "Bearer "+adminToken)
			if _, err := c.CreateSale(ctx, sale); err != nil {
				t.Fatal(err)
			}
			buy := func(field string, headers ...string) (*surgev1.PurchaseResponse, error) {
				r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: id, IdempotencyKey: field})
				r.Header().Set("X-User-ID", "buyer")
				for _, h := range headers {
					r.Header().Add("Idempotency-Key", h)
				}
				resp, err := c.Purchase(ctx, r)
				if err != nil {
					return nil, err
				}
				return resp.Msg, nil
			}
			first, err := buy("", "k-1")
			if err != nil {
				t.Fatalf("first purchase keyed by the header: %v", err)
			}
			again, err := buy("", "k-1")
			if err != nil {
				t.Fatalf("its retry: %v", err)
			}
			if !again.Replayed || again.Order.GetId() != first.Order.GetId() {
				t.Errorf("a retry with the same Idempotency-Key header got order %q (replayed %v); want the replay of %q: the same key bought twice",
					again.Order.GetId(), again.Replayed, first.Order.GetId())
			}
			field, err := buy("k-1")
			if err != nil || !field.Replayed || field.Order.GetId() != first.Order.GetId() {
				t.Errorf("the same key in idempotency_key: %v, %v; want the replay of %q", field, err, first.Order.GetId())
			}
			for _, bad := range []struct {
				what    string
				field   string
				headers []string
			}{
				{"a header that differs from idempotency_key", "k-2", []string{"k-3"}},
				{"two Idempotency-Key headers", "", []string{"k-4", "k-5"}},
			} {
				if _, err := buy(bad.field, bad.headers...); connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Errorf("%s: %v; want invalid_argument", bad.what, err)
				}
			}
			got, err := c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: id}))
			if err != nil {
				t.Fatal(err)
			}
			if r := got.Msg.GetSale().GetRemaining(); r != 9 {
				t.Errorf("remaining %d after one keyed purchase, its retries and two refused ones; want 9", r)
			}
		})
	}
}
