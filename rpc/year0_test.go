package rpc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	"github.com/surgehq/surge/rpc"
)

// TestYearZeroRefusedAlike: a sale's time in year 0000 (or 10000) is no
// time the API keeps (the HTTP API answers 400 invalid_request naming the
// field); over gRPC (binary Timestamp) and Connect JSON it must be refused
// alike: INVALID_ARGUMENT, invalid_request, the field named, no sale made.
func TestYearZeroRefusedAlike(t *testing.T) {
	base := server(t)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	for _, ts := range []string{"0000-01-01T00:00:00Z", "0000-12-31T23:59:59.999Z", "10000-01-01T00:00:00Z"} {
		hc, hb := postJSON(t, base, "/v1/sales", admin, `{"name":"x","stock":5,"starts_at":"`+ts+`"}`)
		gc, gb := postJSON(t, base, "/surge.v1.SaleService/CreateSale", admin, `{"name":"x","stock":5,"startsAt":"`+ts+`"}`)
		if hc != 400 || gc != 400 || !strings.Contains(gb, "invalid_request") || !strings.Contains(gb, "starts") {
			t.Errorf("starts_at %s: HTTP %d %.160s; Connect JSON %d %.200s; want both 400 invalid_request naming the field", ts, hc, hb, gc, gb)
		}
		// RFC 3339 as sent ("10000-…" is not, its year has five digits):
		// the message names the years, not the format.
		if !strings.HasPrefix(ts, "1") && (!strings.Contains(hb, "years 0001 and 9999") || !strings.Contains(gb, "years 0001 and 9999")) {
			t.Errorf("starts_at %s: HTTP %.160s; Connect JSON %.200s; want both to name the years 0001 and 9999", ts, hb, gb)
		}
	}
	c := surgev1connect.NewSaleServiceClient(h2cClient(), base, connect.WithGRPC())
	for _, at := range []time.Time{time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		req := connect.NewRequest(&surgev1.CreateSaleRequest{Name: "x", Stock: 5, StartsAt: timestamppb.New(at)})
		req.Header().Set("Authorization", "Bearer "+adminToken)
		_, err := c.CreateSale(context.Background(), req)
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || ce.Meta().Get(rpc.CodeHeader) != "invalid_request" ||
			!strings.Contains(ce.Message(), "starts_at") {
			t.Errorf("gRPC starts_at %v: %v; want INVALID_ARGUMENT invalid_request naming starts_at", at, err)
		}
	}
}
