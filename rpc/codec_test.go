package rpc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	"github.com/surgehq/surge/rpc"
)

// The Connect protocol's JSON is decoded as strictly as the HTTP API's
// bodies (docs/api.md: no unknown field, names match exactly): a field the
// message lacks, or one cased wrongly, is refused as invalid_request, and
// nothing is reserved, rather than dropped ({"Quantity":2} bought one).
func TestConnectJSONRefusesUnknownFields(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	for _, tc := range []struct {
		name, body, contentType string
		status                  int
	}{
		{"wrongly cased field", `{"saleId":"drop","Quantity":2}`, "application/json", http.StatusBadRequest},
		{"unknown field", `{"saleId":"drop","quantityy":2}`, "application/json", http.StatusBadRequest},
		{"unknown field, charset", `{"saleId":"drop","extra":true}`, "application/json; charset=utf-8", http.StatusBadRequest},
		{"known fields, JSON names", `{"saleId":"drop","idempotencyKey":"k1"}`, "application/json", http.StatusOK},
		{"known fields, proto names", `{"sale_id":"drop","idempotency_key":"k1"}`, "application/json", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/surge.v1.SaleService/Purchase", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("X-User-ID", "alice")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Code, Message string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status {
				t.Fatalf("Purchase %s: %d %+v, want %d", tc.body, resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusOK {
				return
			}
			if body.Code != "invalid_argument" || resp.Header.Get(rpc.CodeHeader) != "invalid_request" {
				t.Errorf("Purchase %s: %s %q, %s %q; want invalid_argument, invalid_request",
					tc.body, body.Code, body.Message, rpc.CodeHeader, resp.Header.Get(rpc.CodeHeader))
			}
		})
	}
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	got, err := c.GetSale(context.Background(), connect.NewRequest(&surgev1.GetSaleRequest{Id: "drop"}))
	if err != nil || got.Msg.Sale.GetRemaining() != 9 {
		t.Errorf("after the refused purchases and one accepted (replayed once): %v %v, want 9 remaining", got, err)
	}
}
