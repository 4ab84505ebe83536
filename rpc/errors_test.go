package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

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
			base, resp := refusedOverHTTP(t, refusal)
			if resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("HTTP: %d Retry-After %q, want Retry-After: 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}

			ce := refusedOverConnect(t, "gRPC", base, connect.WithGRPC())
			if got := retryDelay(ce); got != 1 {
				t.Errorf("gRPC %v (%s): RetryInfo of %vs, want 1s as HTTP's Retry-After: 1",
					ce.Code(), ce.Meta().Get(rpc.CodeHeader), got)
			}
		})
	}
}

// The errors connect-go answers itself, before a call reaches Surge's
// code, carry the HTTP API's code in the Surge-Code header (a trailer in
// gRPC), as Surge's own errors do: a message too large or undecodable,
// a wrong method, a wrong media type. (They carry no ErrorInfo:
// docs/api.md#grpc.)
func TestConnectOwnErrorsCarrySurgeCode(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	purchase := base + surgev1connect.SaleServicePurchaseProcedure
	oversized := &surgev1.PurchaseRequest{SaleId: "drop", WaitingRoomTicket: strings.Repeat("t", surgehttp.MaxSaleBody)}
	grpcFrame := func(msg []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
	}
	for _, tc := range []struct {
		name        string
		method      string
		contentType string
		body        []byte
		surgeCode   string
	}{
		{"Connect, too large", http.MethodPost, "application/proto", must(proto.Marshal(oversized)), "too_large"},
		{"Connect, malformed JSON", http.MethodPost, "application/json", []byte(`{"saleId":`), "invalid_request"},
		{"Connect, malformed proto", http.MethodPost, "application/proto", []byte{0xff, 0xff, 0xff}, "invalid_request"},
		{"gRPC, too large", http.MethodPost, "application/grpc", grpcFrame(must(proto.Marshal(oversized))), "too_large"},
		{"gRPC, malformed proto", http.MethodPost, "application/grpc", grpcFrame([]byte{0xff, 0xff, 0xff}), "invalid_request"},
		{"gRPC-Web, malformed proto", http.MethodPost, "application/grpc-web+proto", grpcFrame([]byte{0xff, 0xff, 0xff}), "invalid_request"},
		{"wrong method", http.MethodPut, "application/json", []byte(`{}`), "method_not_allowed"},
		{"wrong media type", http.MethodPost, "text/plain", []byte(`{}`), "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, purchase, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("X-User-ID", "alice")
			if strings.HasPrefix(tc.contentType, "application/grpc") {
				req.Header.Set("Te", "trailers")
			}
			resp, err := h2cClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body) // trailers arrive with the body's end
			resp.Body.Close()
			got := resp.Header.Get(rpc.CodeHeader)
			if got == "" {
				got = resp.Trailer.Get(rpc.CodeHeader)
			}
			if got != tc.surgeCode {
				t.Errorf("%s %s: %d %q (grpc-status %q %q), %s %q, want %q", tc.method, tc.contentType, resp.StatusCode, body,
					resp.Header.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Status"), rpc.CodeHeader, got, tc.surgeCode)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestConnectRetryableErrorsCarryRetryAfter: over the Connect protocol a
// unary error is an HTTP answer of its own status: overloaded and
// unavailable are 503, rate_limited 429. Every 429 and 503 Surge answers
// says when to come back in Retry-After (docs/protection.md: "tells every
// client when to come back"), which HTTP clients, proxies and load
// balancers read; the Connect answers had the wait only in a RetryInfo
// detail of the JSON body, so a plain HTTP client (fetch, curl, a proxy)
// saw a 503 with no hint and retried at once, the retry storm the header
// is there to prevent.
func TestConnectRetryableErrorsCarryRetryAfter(t *testing.T) {
	for _, refusal := range []*surge.Error{surge.ErrOverloaded, surge.ErrUnavailable, engine.ErrTimeout,
		{Code: surge.CodeRateLimited, Message: "slow down", RetryAfter: 3 * time.Second}} {
		t.Run(refusal.Error(), func(t *testing.T) {
			base := serverOver(t, func(e *engine.Engine) surgehttp.Service { return refusingSvc{e, refusal} }, nil)
			createSale(t, base, "drop", 10)
			hc, _ := postJSONHeaders(t, base, "/v1/sales/drop/purchases", "")
			gc, gh := postJSONHeaders(t, base, "/surge.v1.SaleService/Purchase", `{"sale_id":"drop"}`)
			if gc.StatusCode != hc.StatusCode || gh.Get("Retry-After") != hc.Header.Get("Retry-After") {
				t.Errorf("%s: HTTP answered %d with Retry-After %q; Connect answered %d with Retry-After %q, want the same wait",
					refusal.Code, hc.StatusCode, hc.Header.Get("Retry-After"), gc.StatusCode, gh.Get("Retry-After"))
			}
		})
	}
}

// postJSONHeaders posts body as alice and returns the answer (its body
// read) and its headers.
func postJSONHeaders(t *testing.T, base, path, body string) (*http.Response, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, resp.Header
}

// TestLongWaitsAreCapped: a wait longer than the HTTP API's cap on
// Retry-After (an hour), up to a bucket that never refills
// (rate.InfDuration, 292 years: no client can hold it in a 32-bit count of
// seconds), is answered over HTTP as Retry-After: 3600; gRPC's RetryInfo
// and Connect's Retry-After must say the same hour, not the raw wait.
func TestLongWaitsAreCapped(t *testing.T) {
	for _, wait := range []time.Duration{10 * time.Hour, 1<<63 - 1} {
		t.Run(wait.String(), func(t *testing.T) {
			refusal := &surge.Error{Code: surge.CodeRateLimited, Message: "slow down", RetryAfter: wait}
			base, resp := refusedOverHTTP(t, refusal)
			if got := resp.Header.Get("Retry-After"); got != "3600" {
				t.Fatalf("HTTP: %d Retry-After %q, want 3600 (the cap)", resp.StatusCode, got)
			}
			for _, proto := range []struct {
				name string
				opt  connect.ClientOption
			}{{"gRPC", connect.WithGRPC()}, {"Connect", nil}} {
				opts := []connect.ClientOption{}
				if proto.opt != nil {
					opts = append(opts, proto.opt)
				}
				ce := refusedOverConnect(t, proto.name, base, opts...)
				if got := retryDelay(ce); got != 3600 {
					t.Errorf("%s: RetryInfo of %vs, want 3600s as HTTP's Retry-After", proto.name, got)
				}
				if got := ce.Meta().Get("Retry-After"); proto.name == "Connect" && got != "3600" {
					t.Errorf("%s: Retry-After %q, want 3600", proto.name, got)
				}
			}
		})
	}
}

// refusedOverHTTP starts a server whose purchases all get refusal, with a
// sale "drop", and returns it with the answer to alice's purchase over
// HTTP (its body closed).
func refusedOverHTTP(t *testing.T, refusal *surge.Error) (string, *http.Response) {
	t.Helper()
	base := serverOver(t, func(e *engine.Engine) surgehttp.Service { return refusingSvc{e, refusal} }, nil)
	createSale(t, base, "drop", 10)
	hr, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/v1/sales/drop/purchases", nil)
	hr.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return base, resp
}

// refusedOverConnect sends alice's purchase of "drop" to base with opts
// (the protocol, named proto) and returns its refusal.
func refusedOverConnect(t *testing.T, proto, base string, opts ...connect.ClientOption) *connect.Error {
	t.Helper()
	c := surgev1connect.NewSaleServiceClient(h2cClient(), base, opts...)
	req := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "k1"})
	req.Header().Set("X-User-ID", "alice")
	_, err := c.Purchase(context.Background(), req)
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want an error", proto, err)
	}
	return ce
}
