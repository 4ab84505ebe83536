package rpc_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/servicetest"
)

// TestPurchasePastDeadlineAnswersDeadlineExceeded: docs/api.md#grpc: a
// call "past its deadline" answers DEADLINE_EXCEEDED. A purchase still
// waiting for its batch to commit (SQLite's write lock held elsewhere)
// when the caller's deadline (connect-timeout-ms, grpc-timeout) passed
// answered CANCELED, as if the caller had given up: a client could not
// tell a slow server from its own cancellation, and a Connect client
// reading the HTTP status got 499, not 504.
func TestPurchasePastDeadlineAnswersDeadlineExceeded(t *testing.T) {
	dir := t.TempDir()
	base := serverAt(t, dir, nil, nil)
	createSale(t, base, "drop", 10)

	servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "surge.db"))

	purchasesPastDeadline(t, base, "drop", func(r *http.Request, i int) {
		r.Header.Set("X-User-ID", []string{"alice", "bob"}[i])
	}, "the store stalled")
}

// purchasesPastDeadline sends a purchase of sale over Connect and over
// gRPC-Web (i 0 and 1), each with a 300 ms deadline and the credentials
// auth sets, and wants both answered DEADLINE_EXCEEDED; why says what
// held them past it.
func purchasesPastDeadline(t *testing.T, base, sale string, auth func(r *http.Request, i int), why string) {
	t.Helper()
	callsPastDeadline(t, base, "Purchase", `{"sale_id":"`+sale+`"}`, auth, why)
}

// callsPastDeadline sends a call of method with the JSON message body
// over Connect and over gRPC-Web (i 0 and 1), each with a 300 ms deadline
// and the credentials auth sets, and wants both answered
// DEADLINE_EXCEEDED; why says what held them past it.
func callsPastDeadline(t *testing.T, base, method, body string, auth func(r *http.Request, i int), why string) {
	t.Helper()
	frame := string([]byte{0, 0, 0, 0, byte(len(body))}) + body // one gRPC-Web message
	for i, tc := range []struct {
		name, contentType, timeoutHeader, timeout, body string
	}{
		{"Connect", "application/json", "Connect-Timeout-Ms", "300", body},
		{"gRPC-Web", "application/grpc-web+json", "Grpc-Timeout", "300m", frame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/surge.v1.SaleService/"+method, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set(tc.timeoutHeader, tc.timeout)
			auth(req, i)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.name == "Connect" {
				if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "deadline_exceeded") {
					t.Errorf("a %s past its %s ms deadline (%s): %d %s; want 504 deadline_exceeded", method, tc.timeout, why, resp.StatusCode, b)
				}
				return
			}
			status := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
			if status != "4" && !strings.Contains(string(b), "grpc-status:4") {
				t.Errorf("a %s past its %s deadline (%s): grpc-status %q %q; want 4 (DEADLINE_EXCEEDED)", method, tc.timeout, why, status, b)
			}
		})
	}
}

// TestChangesPastDeadlineAnswerDeadlineExceeded: a CancelOrder or a
// CreateSale still waiting for its commit (SQLite's write lock held
// elsewhere) when the caller's deadline passed answered UNAVAILABLE,
// "timed out waiting for the change to commit", as if the server had
// timed out: the code says retry, a trace and the access log blamed the
// store, and docs/api.md#grpc has a call past its deadline answer
// DEADLINE_EXCEEDED, as a purchase does.
func TestChangesPastDeadlineAnswerDeadlineExceeded(t *testing.T) {
	dir := t.TempDir()
	base := serverAt(t, dir, nil, nil)
	createSale(t, base, "drop", 10)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales/drop/purchases", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Order struct{ ID string } }
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("purchase: %d, %v", resp.StatusCode, err)
	}

	servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "surge.db"))

	for _, c := range []struct{ method, body, header, value string }{
		{"CancelOrder", `{"id":"` + out.Order.ID + `"}`, "X-User-ID", "alice"},
		{"CreateSale", `{"id":"later","name":"Later","stock":5}`, "Authorization", "Bearer " + adminToken},
	} {
		t.Run(c.method, func(t *testing.T) {
			callsPastDeadline(t, base, c.method, c.body, func(r *http.Request, _ int) { r.Header.Set(c.header, c.value) }, "the store stalled")
		})
	}
}

// TestPurchaseDeadlineThenRetryBuysOnce: a grpc-go client whose deadline
// (grpc-timeout) is shorter than the purchase's commit gets
// DEADLINE_EXCEEDED; whatever the server did with the purchase after the
// client gave up, a retry with the same idempotency key buys at most once:
// it reserves, or replays the order made after the deadline.
func TestPurchaseDeadlineThenRetryBuysOnce(t *testing.T) {
	dir := t.TempDir()
	base := serverAt(t, dir, nil, nil)
	createSale(t, base, "drop", 10)
	conn := grpcConn(t, base)
	release := servicetest.HoldSQLiteWriteLock(t, filepath.Join(dir, "surge.db"))

	buyer := []string{"x-user-id", "alice"}
	req := &surgev1.PurchaseRequest{SaleId: "drop", IdempotencyKey: "k1"}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := invoke[surgev1.PurchaseRequest, surgev1.PurchaseResponse](short, conn, "Purchase", req, buyer...)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a purchase past its 300 ms grpc-timeout (the store stalled): %v; want DeadlineExceeded", err)
	}
	release()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		resp, err := invoke[surgev1.PurchaseRequest, surgev1.PurchaseResponse](ctx, conn, "Purchase", req, buyer...)
		if err != nil || resp.Order.GetStatus() != "reserved" || (i == 1 && !resp.Replayed) {
			t.Fatalf("retry %d with the same key after DEADLINE_EXCEEDED: %v %v", i+1, resp, err)
		}
	}
	got, err := invoke[surgev1.GetSaleRequest, surgev1.GetSaleResponse](ctx, conn, "GetSale", &surgev1.GetSaleRequest{Id: "drop"})
	if err != nil || got.Sale.GetRemaining() != 9 {
		t.Fatalf("after a purchase past its deadline and its retries with one key: %v %v; want 9 of 10 left", got, err)
	}
}

// TestWatchSalePastDeadlineAnswersDeadlineExceeded: a WatchSale stream
// whose deadline (connect-timeout-ms, grpc-timeout) passed ended OK, as a
// stream does once its sale ends or it reaches its age: a client reading
// the answer took the end for the sale's. docs/api.md#grpc: a call past
// its deadline is DEADLINE_EXCEEDED.
func TestWatchSalePastDeadlineAnswersDeadlineExceeded(t *testing.T) {
	base := server(t)
	createSale(t, base, "drop", 10)
	for _, tc := range []struct {
		name, contentType, timeoutHeader, timeout, want string
	}{
		{"Connect", "application/connect+json", "Connect-Timeout-Ms", "300", `"code":"deadline_exceeded"`},
		{"gRPC-Web", "application/grpc-web+json", "Grpc-Timeout", "300m", "grpc-status: 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			body := "\x00\x00\x00\x00\x0d" + `{"id":"drop"}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/surge.v1.SaleService/WatchSale", strings.NewReader(body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set(tc.timeoutHeader, tc.timeout)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("a WatchSale past its %s deadline ended %q; want %s", tc.timeout, b, tc.want)
			}
		})
	}
}
