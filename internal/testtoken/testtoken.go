// Package testtoken signs the JWTs that tests send as buyers: one place
// for the claims a valid buyer token carries, so the packages that test
// JWT buyers (http, api, client, cmd/surge) cannot drift apart on them.
package testtoken

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign signs claims with method and key, failing tb if it cannot.
func Sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign token: %v", err)
	}
	return tok
}

// Buyer is a valid HS256 buyer token of user, signed with secret, that
// expires in an hour.
func Buyer(tb testing.TB, secret []byte, user string) string {
	tb.Helper()
	return Sign(tb, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
}
