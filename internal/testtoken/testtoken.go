// Package testtoken signs what tests send to prove who they are: buyers'
// JWTs (and breaks their signatures), and payment webhooks' signatures.
// One place for each, so the packages that test them (http, api, client,
// payments, cmd/surge) cannot drift apart on them.
package testtoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
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

// WebhookV1 is a v1 signature of a payment webhook's body at Unix second
// t, computed by the documented scheme itself rather than by the library
// the server checks it with: hex HMAC-SHA256(secret, "<t>.<body>").
func WebhookV1(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// BrokenSignature is tok with its signature changed, always: its first
// character replaced, which carries the top bits of the signature's first
// byte. (Overwriting its last characters with "A"s leaves as it was every
// token whose signature already ends so: one in 256 for "AA".)
func BrokenSignature(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	c := "A"
	if tok[i] == 'A' {
		c = "B"
	}
	return tok[:i] + c + tok[i+1:]
}
