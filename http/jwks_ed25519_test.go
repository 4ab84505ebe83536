package http

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

// TestJWKSRefusesDegenerateEd25519Keys: an Ed25519 public key that is a
// point of small order (the 32 zero bytes a placeholder key is made of,
// the identity, and the other six) verifies a signature that anyone can
// make without a private key (R the identity, S zero) for a good share
// of messages: under such a key any client mints a token for any buyer.
// A key that is no point at all verifies nothing. A JWKS holding either is
// refused, as one holding a P-256 key off the curve is, in a file and in a
// fetched set.
func TestJWKSRefusesDegenerateEd25519Keys(t *testing.T) {
	for _, c := range []struct{ name, hex string }{
		{"32 zero bytes (y = 0, order 4)", "0000000000000000000000000000000000000000000000000000000000000000"},
		{"y = 0 with the sign bit (order 4)", "0000000000000000000000000000000000000000000000000000000000000080"},
		{"the identity (y = 1)", "0100000000000000000000000000000000000000000000000000000000000000"},
		{"the identity, non-canonical (y = p + 1)", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"y = 0, non-canonical (y = p)", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"y = -1 (order 2)", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"},
		{"order 8, the other y", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
		{"not a point (y = 2)", "0200000000000000000000000000000000000000000000000000000000000000"},
	} {
		x, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		jwk := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": base64.RawURLEncoding.EncodeToString(x)}
		doc := jwksDoc(t, jwk)
		ks, err := ParseJWKS(doc)
		if _, fetchedErr := parseJWKS(doc, true); fetchedErr == nil {
			t.Errorf("%s: a fetched key set holding it was accepted; want it refused", c.name)
		}
		if err != nil {
			continue
		}
		forged := forgeWithoutKey(t, ks)
		t.Errorf("%s: a JWKS file holding this Ed25519 key was accepted; want it refused at start (exit 2) as a P-256 key off the curve is. %s",
			c.name, forged)
	}
	// Real keys, whatever their bytes, still pass.
	for i := range 500 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseJWKS(jwksDoc(t, PublicJWK("k", pub))); err != nil {
			t.Fatalf("real Ed25519 key %d (%x) refused: %v", i, []byte(pub), err)
		}
	}
}

// forgeWithoutKey tries to make a token for mallory under ks with no
// private key at all, and says what came of it.
func forgeWithoutKey(t *testing.T, ks *JWKS) string {
	t.Helper()
	s := serverWithAuth(authOptions{buyer: BuyerAuth{JWKS: ks}})
	enc := base64.RawURLEncoding
	sig := make([]byte, 64)
	sig[0] = 1 // R = the identity, S = 0
	exp := time.Now().Add(time.Hour).Unix()
	const tries = 64
	for i := range tries {
		signing := enc.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k"}`)) + "." +
			enc.EncodeToString(fmt.Appendf(nil, `{"sub":"mallory","exp":%d,"jti":"%d"}`, exp, i))
		if user, err := s.auth.verifyJWT(signing + "." + enc.EncodeToString(sig)); err == nil {
			return fmt.Sprintf("A token for %q forged without any private key was accepted (attempt %d of %d).", user, i+1, tries)
		}
	}
	return fmt.Sprintf("(%d tokens forged without a private key were all refused.)", tries)
}
