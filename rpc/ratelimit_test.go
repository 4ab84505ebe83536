package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/surgehq/surge/admission"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// TestPerAddressLimitAnswersInTheCallsProtocol: the per-address rate
// limit (--rate-limit-ip) refuses a request before it is routed, and it
// answered every gRPC, gRPC-Web and Connect call with the HTTP API's JSON
// 429, which no RPC client reads: grpc-go and connect-go's gRPC took it
// for UNAVAILABLE ("unexpected HTTP status code 429"), without the Surge
// code or the wait, so a client backed off as from a node gone, or retried
// at once. A call is now refused in its own protocol as Surge's other
// refusals are (docs/api.md#grpc): RESOURCE_EXHAUSTED, rate_limited in the
// ErrorInfo and the Surge-Code header, a RetryInfo with the wait; over the
// Connect protocol still HTTP 429 with Retry-After. A request under the
// service's path that is no call still gets the JSON 429.
func TestPerAddressLimitAnswersInTheCallsProtocol(t *testing.T) {
	base := serverOver(t, nil, func(c *surgehttp.Config) {
		// One request an hour per address: the first passes, the rest
		// are refused with a wait of about an hour.
		c.Protection.IP = admission.NewKeyed(rate.Every(time.Hour), 1, 100, time.Hour)
	})
	resp, err := http.Get(base + "/v1/sales")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the address's first request: %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("grpc-go", func(t *testing.T) {
		conn := grpcConn(t, base)
		var trailer metadata.MD
		err := conn.Invoke(ctx, svc+"GetSale", &surgev1.GetSaleRequest{Id: "drop"}, new(surgev1.GetSaleResponse), grpc.Trailer(&trailer))
		wantStatus(t, "GetSale over the per-address limit", err, codes.ResourceExhausted, "rate_limited", trailer)
		if d := grpcRetryDelay(err); d <= 0 {
			t.Errorf("GetSale over the per-address limit: %v has no RetryInfo", err)
		}
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, svc+"WatchSale")
		if err != nil {
			t.Fatal(err)
		}
		// A stream the server has ended takes no message (io.EOF): its
		// status is what RecvMsg answers.
		_ = s.SendMsg(&surgev1.WatchSaleRequest{Id: "drop"})
		_ = s.CloseSend()
		err = s.RecvMsg(new(surgev1.WatchSaleResponse))
		wantStatus(t, "WatchSale over the per-address limit", err, codes.ResourceExhausted, "rate_limited", s.Trailer())
	})

	for _, tc := range []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect-go gRPC", h2cClient(), []connect.ClientOption{connect.WithGRPC()}},
		{"connect-go gRPC-Web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"connect-go Connect", http.DefaultClient, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := surgev1connect.NewSaleServiceClient(tc.client, base, tc.opts...)
			_, err := c.GetSale(ctx, connect.NewRequest(&surgev1.GetSaleRequest{Id: "drop"}))
			wantConnectRateLimited(t, "GetSale", err)
			r := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop"})
			r.Header().Set("X-User-ID", "alice")
			_, err = c.Purchase(ctx, r)
			wantConnectRateLimited(t, "Purchase", err)
			s, err := c.WatchSale(ctx, connect.NewRequest(&surgev1.WatchSaleRequest{Id: "drop"}))
			if err == nil {
				for s.Receive() {
				}
				err = s.Err()
				s.Close()
			}
			wantConnectRateLimited(t, "WatchSale", err)
		})
	}

	// What plain HTTP clients and proxies read of a Connect call: 429 and
	// when to come back, as the HTTP API's own.
	t.Run("Connect over plain HTTP", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+svc+"GetSale", strings.NewReader(`{"id":"drop"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct{ Code string }
		_ = json.Unmarshal(b, &body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
			resp.Header.Get(rpc.CodeHeader) != "rate_limited" || body.Code != "resource_exhausted" {
			t.Errorf("a Connect GetSale over the per-address limit: %d, Retry-After %q, %s %q, %s; want 429 with Retry-After, rate_limited and Connect's error resource_exhausted",
				resp.StatusCode, resp.Header.Get("Retry-After"), rpc.CodeHeader, resp.Header.Get(rpc.CodeHeader), b)
		}
	})

	// Requests that are no call keep the API's JSON answer.
	for _, tc := range []struct{ name, method, path, contentType string }{
		{"the HTTP API", http.MethodGet, "/v1/sales", ""},
		{"no protocol under the service's path", http.MethodPost, svc + "GetSale", "text/plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, code, b := errorAnswer(t, http.DefaultClient, tc.method, base+tc.path, tc.contentType)
			if status != http.StatusTooManyRequests || code != "rate_limited" {
				t.Errorf("%s %s over the per-address limit: %d %s; want the JSON 429 rate_limited", tc.method, tc.path, status, b)
			}
		})
	}
}

// wantConnectRateLimited checks that err is the per-address limit's
// refusal as a connect-go client reads it.
func wantConnectRateLimited(t *testing.T, what string, err error) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Meta().Get(rpc.CodeHeader) != "rate_limited" || retryDelay(ce) <= 0 {
		t.Errorf("%s over the per-address limit: %v; want resource_exhausted, %s rate_limited and a RetryInfo", what, err, rpc.CodeHeader)
	}
}

// grpcRetryDelay is the wait of a grpc-go error's RetryInfo, 0 without one.
func grpcRetryDelay(err error) time.Duration {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
