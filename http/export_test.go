package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// This file exports test helpers to the http_test package.

// UseBuyerAuth rebuilds the server's authenticator from its Config plus b,
// as New will once Config carries a BuyerAuth. Call it before serving.
func (s *Server) UseBuyerAuth(b BuyerAuth) {
	cfg := s.cfg
	cfg.BuyerAuth = b
	s.Apply(cfg)
}

// verifyJWT checks a buyer token as identify does, with the keys in force.
func (a *liveAuth) verifyJWT(tok string) (string, error) { return a.get().verifyJWT(tok) }

// serverWithAuth is a Server with an authenticator and nothing else, for
// the tests of buyer keys.
func serverWithAuth(o authOptions) *Server {
	s := &Server{live: new(atomic.Pointer[live])}
	s.live.Store(newLiveOptions(o, Protection{}))
	s.auth = &liveAuth{cur: s.live}
	return s
}

// verifyJWT checks a buyer token as identify does and returns its subject.
func (a *authenticator) verifyJWT(tok string) (string, error) {
	return a.buyers.verify(context.Background(), tok)
}

// TestKeys are the signing keys of the tests. The set JWKS holds the
// public halves of Ed25519 (kid "ed") and RSA (kid "rsa"); OtherRSA is in
// no set.
type TestKeys struct {
	Ed25519  ed25519.PrivateKey
	RSA      *rsa.PrivateKey
	OtherRSA *rsa.PrivateKey
	JWKS     *JWKS
	JWKSJSON []byte
}

// LoadTestKeys returns fixed keys: the Ed25519 key derives from a constant
// seed, the RSA keys are in testdata (as "TESTING KEY" blocks, so secret
// scanners do not take them for leaked keys).
func LoadTestKeys(tb testing.TB) TestKeys {
	tb.Helper()
	seed := sha256.Sum256([]byte("surge test ed25519 key"))
	k := TestKeys{
		Ed25519:  ed25519.NewKeyFromSeed(seed[:]),
		RSA:      loadTestRSA(tb, "testdata/keys/rsa-a.pem"),
		OtherRSA: loadTestRSA(tb, "testdata/keys/rsa-b.pem"),
	}
	doc, err := json.Marshal(map[string]any{"keys": []map[string]any{
		PublicJWK("ed", k.Ed25519.Public()),
		PublicJWK("rsa", &k.RSA.PublicKey),
	}})
	if err != nil {
		tb.Fatal(err)
	}
	k.JWKSJSON = doc
	if k.JWKS, err = ParseJWKS(doc); err != nil {
		tb.Fatalf("test JWKS: %v", err)
	}
	return k
}

func loadTestRSA(tb testing.TB, path string) *rsa.PrivateKey {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode([]byte(strings.ReplaceAll(string(b), "TESTING KEY", "PRIVATE KEY")))
	if block == nil {
		tb.Fatalf("%s: no PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		tb.Fatalf("%s: not an RSA key", path)
	}
	return rk
}

// PublicJWK returns the JWK of an Ed25519, RSA or ECDSA public key; kid "" leaves
// the kid out.
func PublicJWK(kid string, pub any) map[string]any {
	enc := base64.RawURLEncoding
	var m map[string]any
	switch k := pub.(type) {
	case ed25519.PublicKey:
		m = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": enc.EncodeToString(k)}
	case *rsa.PublicKey:
		m = map[string]any{"kty": "RSA", "n": enc.EncodeToString(k.N.Bytes()),
			"e": enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := k.Bytes() // 0x04 || x || y
		if err != nil {
			panic(err)
		}
		n := (len(b) - 1) / 2
		m = map[string]any{"kty": "EC", "crv": k.Curve.Params().Name,
			"x": enc.EncodeToString(b[1 : 1+n]), "y": enc.EncodeToString(b[1+n:])}
	default:
		panic("PublicJWK: unsupported key type")
	}
	if kid != "" {
		m["kid"] = kid
	}
	return m
}

// OnStreamTick makes f be called after each look a queue event stream
// takes at its place. Call it before serving.
func (s *Server) OnStreamTick(f func()) { s.queues.ticked = f }

// SetStreamTiming shortens the tick and heartbeat of queue event streams.
func (s *Server) SetStreamTiming(tick, heartbeat time.Duration) {
	s.queues.tick, s.queues.heartbeat = tick, heartbeat
}
