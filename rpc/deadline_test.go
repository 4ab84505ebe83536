package rpc_test

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

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

	for i, tc := range []struct {
		name, contentType, timeoutHeader, timeout, body string
	}{
		{"Connect", "application/json", "Connect-Timeout-Ms", "300", `{"sale_id":"drop"}`},
		{"gRPC-Web", "application/grpc-web+json", "Grpc-Timeout", "300m", "\x00\x00\x00\x00\x12" + `{"sale_id":"drop"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/surge.v1.SaleService/Purchase", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set(tc.timeoutHeader, tc.timeout)
			req.Header.Set("X-User-ID", []string{"alice", "bob"}[i])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.name == "Connect" {
				if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "deadline_exceeded") {
					t.Errorf("a purchase past its %sms deadline (the store stalled): %d %s; want 504 deadline_exceeded", tc.timeout, resp.StatusCode, b)
				}
				return
			}
			status := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
			if status != "4" && !strings.Contains(string(b), "grpc-status:4") {
				t.Errorf("a purchase past its %s deadline (the store stalled): grpc-status %q %q; want 4 (DEADLINE_EXCEEDED)", tc.timeout, status, b)
			}
		})
	}
}
