package http

import (
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSURLSkippedKeysNeedNoKid: an identity provider's published set
// may hold keys Surge skips (an encryption key, a curve it does not
// verify) beside the one signing key. A kid is needed to tell the keys
// Surge verifies with apart, so only those count: a lone signing key
// without a kid works, whatever else the set holds. Before, every key in
// the document counted, and such a set was refused whole (the start
// failed, or every refresh kept the keys before it).
func TestJWKSURLSkippedKeysNeedNoKid(t *testing.T) {
	sig := newEd25519(t)
	enc := newEd25519(t)
	doc := jwksDoc(t, PublicJWK("", sig.Public()), with(PublicJWK("enc-1", enc.Public()), "use", "enc"))
	srv := newJWKSServer(t, doc)
	remote, err := FetchJWKS(t.Context(), srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("a set of one signing key without a kid and one encryption key: %v; want the signing key taken", err)
	}
	t.Cleanup(remote.Close)
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	tok := kit.sign(jwt.SigningMethodEdDSA, sig, nil, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if user, err := a.verifyJWT(tok); err != nil || user != "alice" {
		t.Errorf("a token of the set's signing key: %q, %v; want alice", user, err)
	}
	// Two signing keys still need their kids: a token could not say
	// which one signed it.
	two := jwksDoc(t, PublicJWK("", sig.Public()), PublicJWK("", enc.Public()))
	if _, err := FetchJWKS(t.Context(), newJWKSServer(t, two).URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("a set of two signing keys without kids was taken; want it refused")
	}
}
