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
	"github.com/golang-jwt/jwt/v5"

	surgev1 "github.com/surgehq/surge/gen/surge/v1"
	"github.com/surgehq/surge/gen/surge/v1/surgev1connect"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/rpc"
)

// TestCreateSaleRefusalsWordedAsHTTP: docs/api.md#grpc: "credentials are
// the same headers ..., read by the same code". A CreateSale without the
// admin token was refused in words of its own: a buyer "this call needs
// the admin token" where POST /v1/sales says "this endpoint needs the
// admin token, not a buyer's"; no credentials "send Authorization: Bearer
// <token>", as if a buyer's would do; a bearer token that is not the
// admin's, why it is no good buyer token. The same refusal now says the
// same, with the codes of docs/api.md's table: PERMISSION_DENIED for a
// buyer, UNAUTHENTICATED otherwise.
func TestCreateSaleRefusalsWordedAsHTTP(t *testing.T) {
	secret := []byte("rpc-admin-auth-test-secret-0123456789")
	base := serverOver(t, nil, func(c *surgehttp.Config) { c.JWTSecret = secret })
	buyerToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256,
		jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	c := surgev1connect.NewSaleServiceClient(http.DefaultClient, base)
	for _, tc := range []struct {
		name   string
		header map[string]string
		code   connect.Code
	}{
		{"no credentials", nil, connect.CodeUnauthenticated},
		{"a buyer's token", map[string]string{"Authorization": "Bearer " + buyerToken}, connect.CodePermissionDenied},
		{"a buyer by X-User-ID", map[string]string{"X-User-ID": "alice"}, connect.CodePermissionDenied},
		{"a token neither admin's nor a buyer's", map[string]string{"Authorization": "Bearer not-the-admin-token"}, connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/sales", strings.NewReader(`{"name":"x","stock":5}`))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string }
			}
			if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &body) != nil {
				t.Fatalf("POST /v1/sales: %d %s; want 401", resp.StatusCode, b)
			}

			r := connect.NewRequest(&surgev1.CreateSaleRequest{Name: "x", Stock: 5})
			for k, v := range tc.header {
				r.Header().Set(k, v)
			}
			_, err = c.CreateSale(context.Background(), r)
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("CreateSale: %v; want %v", err, tc.code)
			}
			if ce.Code() != tc.code || ce.Meta().Get(rpc.CodeHeader) != body.Error.Code || ce.Message() != body.Error.Message {
				t.Errorf("CreateSale: %v (%s %q); POST /v1/sales answered %s %q: want %v and the same words",
					err, rpc.CodeHeader, ce.Meta().Get(rpc.CodeHeader), body.Error.Code, body.Error.Message, tc.code)
			}
		})
	}
}
