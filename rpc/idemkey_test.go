package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"unicode/utf8"

	"connectrpc.com/connect"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// TestIdempotencyKeyOneAcrossProtocols: docs/api.md, gRPC: "purchases run
// through the same engine, with idempotency_key as Idempotency-Key", and
// README: "the same buyer and Idempotency-Key never buys twice". An HTTP
// field value never holds the spaces around it (RFC 9110 §5.5: net/http
// drops them), so the header "Idempotency-Key: k1 " is the key "k1"; the
// gRPC API took idempotency_key "k1 " as another key, and the buyer who
// bought with it over gRPC and retried over HTTP with the same key bought
// twice. A key of spaces alone, refused over HTTP, was taken over gRPC.
func TestIdempotencyKeyOneAcrossProtocols(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	// per_user_limit is 1 by default; raise it so that only the key
	// stands between the buyer and a second unit.
	req, _ := http.NewRequest("PATCH", base+"/v1/sales/drop", stringsReader(`{"per_user_limit":5}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("raise the limit: %v %v", resp, err)
	}
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "k1 "})
	buy.Header().Set("X-User-ID", "alice")
	first, err := c.Purchase(context.Background(), buy)
	if err != nil {
		t.Fatal(err)
	}
	hreq, _ := http.NewRequest("POST", base+"/v1/sales/drop/purchases", nil)
	hreq.Header.Set("X-User-ID", "alice")
	hreq.Header["Idempotency-Key"] = []string{"k1 "}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Order struct {
			ID             string `json:"id"`
			IdempotencyKey string `json:"idempotency_key"`
		} `json:"order"`
	}
	_ = json.Unmarshal(b, &got)
	if got.Order.ID != first.Msg.Order.Id {
		t.Errorf("gRPC idempotency_key %q bought order %s; HTTP Idempotency-Key %q then answered %d %s: a second order",
			"k1 ", first.Msg.Order.Id, "k1 ", resp.StatusCode, b)
	}
	blank := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "   "})
	blank.Header().Set("X-User-ID", "bob")
	if _, err := c.Purchase(context.Background(), blank); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("idempotency_key of spaces alone: %v, want INVALID_ARGUMENT as HTTP's 400", err)
	}
}

func stringsReader(s string) io.Reader { return &sr{s: s} }

type sr struct{ s string }

func (r *sr) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

// FuzzIdempotencyKeyAcrossProtocols: a key means the same over gRPC
// (Connect, JSON) as over HTTP, where it is the Idempotency-Key header:
// refused by both, or the HTTP retry of a gRPC purchase replays its order
// (a buyer may hold one unit, so anything else is a second purchase or a
// refusal of the retry).
func FuzzIdempotencyKeyAcrossProtocols(f *testing.F) {
	for _, k := range []string{"k1", "k1 ", " k1", "   ", "a\tb", "", "~!@#$%^&*()_+", "\x7f", "é"} {
		f.Add(k)
	}
	base := server(f)
	createSale(f, base, "keys", 1_000_000_000)
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base, connect.WithProtoJSON())
	n := 0
	f.Fuzz(func(t *testing.T, key string) {
		if !httpHeaderValue(key) || key == "" || !utf8.ValidString(key) {
			return // no HTTP client can send it as a header, or gRPC as a string
		}
		n++
		user := fmt.Sprintf("u%d", n)
		buy := connect.NewRequest(&surgev1.PurchaseRequest{SaleId: "keys", IdempotencyKey: key})
		buy.Header().Set("X-User-ID", user)
		first, gerr := c.Purchase(context.Background(), buy)
		hreq, _ := http.NewRequest("POST", base+"/v1/sales/keys/purchases", nil)
		hreq.Header.Set("X-User-ID", user)
		hreq.Header["Idempotency-Key"] = []string{key}
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if gerr != nil {
			if connect.CodeOf(gerr) != connect.CodeInvalidArgument || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("key %q: gRPC %v, HTTP %d %s", key, gerr, resp.StatusCode, b)
			}
			return
		}
		var got struct {
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		}
		_ = json.Unmarshal(b, &got)
		if resp.StatusCode != http.StatusCreated || got.Order.ID != first.Msg.Order.Id || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("key %q: gRPC bought %s; the HTTP retry answered %d %s", key, first.Msg.Order.Id, resp.StatusCode, b)
		}
	})
}

// httpHeaderValue reports whether net/http's client sends v as a header
// value (httpguts.ValidHeaderFieldValue: no control character but tab).
func httpHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
