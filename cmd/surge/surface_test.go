package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
)

// --cors-origins reaches the API: a preflight from a named origin is
// answered; a wildcard or a path is refused at start (exit 2, one line).
func TestServeCORSOrigins(t *testing.T) {
	for _, bad := range []string{"*", "https://shop.example.com/app", "shop.example.com"} {
		code, _, stderr := runCLI(cancelled(), "serve", "--cors-origins", bad, "--data-dir", t.TempDir())
		if code != 2 || !oneLine(stderr) || !strings.Contains(stderr, "--cors-origins") {
			t.Errorf("serve --cors-origins %q: exit %d, stderr %q; want 2 and one line", bad, code, stderr)
		}
	}
	srv := startServe(t, "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "warn",
		"--admin-token", "cors-test-admin-token", "--cors-origins", "https://shop.example.com, http://localhost:3000")
	for origin, want := range map[string]string{"http://localhost:3000": "http://localhost:3000", "https://other.example.com": ""} {
		req, _ := http.NewRequest(http.MethodOptions, srv.base+"/v1/sales/x/purchases", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,idempotency-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); resp.StatusCode != http.StatusNoContent || got != want {
			t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q; want 204, %q", origin, resp.StatusCode, got, want)
		}
	}
}

// TestAdminListenerServesGRPC: with --admin-addr the admin endpoints exist
// only on the private listener, and the gRPC API is served as gRPC
// (HTTP/2 without TLS, prior knowledge) there as on the API's listener: an
// operator's gRPC client can create a sale on the admin listener.
func TestAdminListenerServesGRPC(t *testing.T) {
	const token = "admin-listener-grpc-token"
	admin := freeAddr(t)
	startServe(t, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--admin-token", token,
		"--admin-addr", admin, "--log-level", "error")
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
	c := surgev1connect.NewSaleServiceClient(h2c, "http://"+admin, connect.WithGRPC())
	id := "grpc-admin"
	req := connect.NewRequest(&surgev1.CreateSaleRequest{Id: &id, Name: "gRPC on the admin listener", Stock: 10})
	req.Header().Set("Authorization", "Bearer "+token)
	if _, err := c.CreateSale(context.Background(), req); err != nil {
		t.Fatalf("gRPC CreateSale on the --admin-addr listener: %v", err)
	}
}
