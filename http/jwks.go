package http

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"

	"filippo.io/edwards25519"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// JWKS limits. A key set is the operator's file, not client input, but a
// wrong path (a log, a dump) should fail clearly rather than load slowly.
const (
	maxJWKSFile    = 1 << 20
	minRSAKeyBits  = 2048
	maxRSAKeyBits  = 8192
	maxRSAExponent = 1<<31 - 1
)

// The JWS algorithms a JWKS key can verify: each key type maps to exactly
// one, so a key is never used with an algorithm it was not made for.
const (
	algHS256 = "HS256"
	algEdDSA = "EdDSA"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// errUnusableKey marks a key Surge cannot verify with (another use, type or
// curve): a file holding one is refused, a fetched set skips it
// (identity providers publish encryption keys beside signing ones).
var errUnusableKey = errors.New("unusable key")

// JWKS is a set of public keys that verify buyer JWTs: Ed25519 keys (kty
// OKP) verify EdDSA tokens, RSA keys RS256 tokens and P-256 keys (kty EC)
// ES256 tokens. A token picks
// its key by kid; a kid is optional only when the set holds one key. Build
// it with [ParseJWKS] or [LoadJWKS]; it is immutable afterwards.
type JWKS struct {
	keys []jwk
}

// jwk is one verified public key.
type jwk struct {
	kid string
	alg string // algEdDSA, algRS256 or algES256
	key any    // ed25519.PublicKey, *rsa.PublicKey or *ecdsa.PublicKey
}

// LoadJWKS reads a JWKS file (RFC 7517 JSON: {"keys":[...]}).
func LoadJWKS(path string) (*JWKS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSFile+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: read %s: %w", path, err)
	}
	if len(data) > maxJWKSFile {
		return nil, fmt.Errorf("jwks: %s is larger than %d bytes", path, maxJWKSFile)
	}
	ks, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ks, nil
}

// rawJWK holds the members of a JWK that Surge reads or refuses.
type rawJWK struct {
	Kty    string   `json:"kty"`
	Kid    *string  `json:"kid"`
	Use    *string  `json:"use"`
	Alg    *string  `json:"alg"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

// ParseJWKS parses and checks a JWKS document. Every key must be a public
// signing key Surge supports; anything else is an error, never skipped, so
// a key set means exactly what it says.
func ParseJWKS(data []byte) (*JWKS, error) {
	return parseJWKS(data, false)
}

// parseJWKS parses a key set; skipUnusable drops the keys that are no
// signing keys Surge supports instead of refusing the set (private key
// material is refused all the same).
func parseJWKS(data []byte, skipUnusable bool) (*JWKS, error) {
	// json/v2, as each key's members below: "Keys" is not "keys", and a
	// set naming "keys" twice is refused, not read as its last.
	var doc struct {
		Keys []jsontext.Value `json:"keys"`
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	if err := jsonv2.UnmarshalDecode(dec, &doc); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON key set: %w", err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return nil, errors.New("jwks: trailing data after the key set")
	}
	if len(doc.Keys) == 0 {
		return nil, errNoKeys
	}
	ks := &JWKS{keys: make([]jwk, 0, len(doc.Keys))}
	var at []int // the place in the document of each key kept
	for i, raw := range doc.Keys {
		k, err := parseJWK(json.RawMessage(raw))
		if skipUnusable && errors.Is(err, errUnusableKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		if k.kid != "" && slices.ContainsFunc(ks.keys, func(o jwk) bool { return o.kid == k.kid }) {
			return nil, fmt.Errorf("jwks: key %d: duplicate kid %q", i, k.kid)
		}
		ks.keys = append(ks.keys, k)
		at = append(at, i)
	}
	if len(ks.keys) == 0 {
		return nil, errNoKeys
	}
	// A kid tells apart the keys a token may name; the keys skipped (an
	// encryption key beside the signing key) are none of them.
	for j, k := range ks.keys {
		if len(ks.keys) > 1 && k.kid == "" {
			return nil, fmt.Errorf("jwks: key %d has no kid; every signing key needs one when the set holds several", at[j])
		}
	}
	return ks, nil
}

var errNoKeys = errors.New(`jwks: no keys (want {"keys":[...]} with at least one signing key)`)

func parseJWK(raw json.RawMessage) (jwk, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return jwk{}, errors.New("not a JSON object")
	}
	// The members of private or symmetric keys (RFC 7518 §6.2.2, §6.3.2,
	// §6.4; RFC 8037 §2): a file with any of them leaks a signing key, and
	// refusing it keeps the mistake from going unnoticed.
	for _, m := range [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, ok := members[m]; ok {
			return jwk{}, fmt.Errorf("holds private or symmetric key material (%q); publish public keys only", m)
		}
	}
	// json/v2: member names are case-sensitive (RFC 7517 §4) and a
	// member named twice is refused; encoding/json would take "Use" for
	// "use", and the last of two, so a key could read as another here
	// than in any other reader.
	var r rawJWK
	if err := jsonv2.Unmarshal(raw, &r); err != nil {
		return jwk{}, fmt.Errorf("malformed key: %w", err)
	}
	k := jwk{}
	if r.Kid != nil {
		if *r.Kid == "" {
			return jwk{}, errors.New("empty kid")
		}
		k.kid = *r.Kid
	}
	if r.Use != nil && *r.Use != "sig" {
		return jwk{}, fmt.Errorf("%w: use %q: only signature keys (use \"sig\") verify tokens", errUnusableKey, *r.Use)
	}
	if r.KeyOps != nil && !slices.Contains(r.KeyOps, "verify") {
		return jwk{}, fmt.Errorf(`%w: key_ops does not allow "verify"`, errUnusableKey)
	}
	switch r.Kty {
	case "OKP":
		if r.Crv != "Ed25519" {
			return jwk{}, fmt.Errorf("%w: OKP curve %q is not supported (only Ed25519)", errUnusableKey, r.Crv)
		}
		x, err := base64.RawURLEncoding.Strict().DecodeString(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("x must be a 32-byte Ed25519 public key, base64url without padding")
		}
		if err := checkEd25519Point(x); err != nil {
			return jwk{}, err
		}
		k.alg, k.key = algEdDSA, ed25519.PublicKey(x)
	case "RSA":
		key, err := rsaPublicKey(r.N, r.E)
		if err != nil {
			return jwk{}, err
		}
		k.alg, k.key = algRS256, key
	case "EC":
		key, err := p256PublicKey(r.Crv, r.X, r.Y)
		if err != nil {
			return jwk{}, err
		}
		k.alg, k.key = algES256, key
	case "":
		return jwk{}, errors.New("missing kty")
	default:
		return jwk{}, fmt.Errorf("%w: key type %q is not supported (OKP with crv Ed25519, RSA, or EC with crv P-256)", errUnusableKey, r.Kty)
	}
	if r.Alg != nil && *r.Alg != k.alg {
		return jwk{}, fmt.Errorf("%w: alg %q does not match the key: a %s key verifies %s only", errUnusableKey, *r.Alg, r.Kty, k.alg)
	}
	return k, nil
}

func rsaPublicKey(n64, e64 string) (*rsa.PublicKey, error) {
	enc := base64.RawURLEncoding.Strict()
	nb, err := enc.DecodeString(n64)
	if err != nil || len(nb) == 0 || nb[0] == 0 {
		return nil, errors.New("n must be the RSA modulus, big-endian without leading zeros, base64url without padding")
	}
	eb, err := enc.DecodeString(e64)
	if err != nil || len(eb) == 0 || eb[0] == 0 || len(eb) > 4 {
		return nil, errors.New("e must be the RSA public exponent, base64url without padding")
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < minRSAKeyBits || bits > maxRSAKeyBits {
		// A well-formed key of a size Surge does not verify with (an
		// issuer's legacy key): refused in a file, skipped in a fetched set.
		return nil, fmt.Errorf("%w: RSA modulus of %d bits; want %d to %d", errUnusableKey, bits, minRSAKeyBits, maxRSAKeyBits)
	}
	if n.Bit(0) == 0 {
		return nil, errors.New("RSA modulus is even")
	}
	e := new(big.Int).SetBytes(eb).Int64()
	if e < 3 || e > maxRSAExponent || e%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d is not an odd number from 3 to %d", e, maxRSAExponent)
	}
	return &rsa.PublicKey{N: n, E: int(e)}, nil
}

// checkEd25519Point refuses an Ed25519 public key (RFC 8032 §5.1.3) that
// is no point of the curve in its canonical encoding, or a point of small
// order. crypto/ed25519 checks neither when it verifies: a key that is no
// point verifies nothing, and under one of the eight points of small order
// (the 32 zero bytes of a placeholder key are one) the signature R = the
// identity, S = 0, which anyone can make without a private key, verifies
// at least one message in eight, so anyone could mint a token for any
// buyer.
func checkEd25519Point(x []byte) error {
	pt, err := new(edwards25519.Point).SetBytes(x)
	if err != nil {
		return errors.New("x is not an Ed25519 point: no point of the curve has this y")
	}
	// SetBytes takes non-canonical encodings too (y ≥ p).
	if !bytes.Equal(pt.Bytes(), x) {
		return errors.New("x is not the canonical encoding of an Ed25519 point")
	}
	// A point of small order is one the cofactor (8) takes to the identity.
	if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errors.New("x is an Ed25519 point of small order, under which anyone can forge a signature: not a public key")
	}
	return nil
}

// p256PublicKey checks and builds a P-256 public key (RFC 7518 §6.2.1):
// x and y of exactly 32 bytes each, a point on the curve.
func p256PublicKey(crv, x64, y64 string) (*ecdsa.PublicKey, error) {
	if crv != "P-256" {
		return nil, fmt.Errorf("%w: EC curve %q is not supported (only P-256, for ES256)", errUnusableKey, crv)
	}
	enc := base64.RawURLEncoding.Strict()
	x, errX := enc.DecodeString(x64)
	y, errY := enc.DecodeString(y64)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("x and y must be 32-byte P-256 coordinates, base64url without padding")
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("not a P-256 public key: %w", err)
	}
	return key, nil
}

// Len returns the number of keys.
func (ks *JWKS) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.keys)
}

// algorithms returns the JWS algorithms the set's keys verify.
func (ks *JWKS) algorithms() []string {
	var algs []string
	for _, k := range ks.all() {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	return algs
}

// all returns the keys of a possibly nil set.
func (ks *JWKS) all() []jwk {
	if ks == nil {
		return nil
	}
	return ks.keys
}

// lookup selects the key for a token: by kid when the token names one, the
// only key when the set has one and the token names none. The key must be
// made for alg, so a token cannot steer a key into another algorithm.
func (ks *JWKS) lookup(kid string, hasKid bool, alg string) (any, error) {
	keys := ks.all()
	var k *jwk
	switch {
	case hasKid:
		i := slices.IndexFunc(keys, func(k jwk) bool { return k.kid == kid })
		if i < 0 {
			return nil, errors.New("no key with the token's kid")
		}
		k = &keys[i]
	case len(keys) == 1:
		k = &keys[0]
	default:
		return nil, errors.New("the token has no kid and the key set holds several keys")
	}
	if k.alg != alg {
		return nil, fmt.Errorf("the key verifies %s, not %s", k.alg, alg)
	}
	return k.key, nil
}

// sameKeys reports whether two sets, possibly nil, hold the same keys
// under the same kids, in the same order.
func (ks *JWKS) sameKeys(o *JWKS) bool {
	return ks == o || ks.Len() == o.Len() && bytes.Equal(ks.document(), o.document())
}

// document writes the set out as a JWKS: each key's public members, its
// kid and its one algorithm, nothing else.
func (ks *JWKS) document() []byte {
	enc := base64.RawURLEncoding
	keys := make([]map[string]string, 0, ks.Len())
	for _, k := range ks.all() {
		m := map[string]string{"use": "sig", "alg": k.alg}
		if k.kid != "" {
			m["kid"] = k.kid
		}
		switch key := k.key.(type) {
		case ed25519.PublicKey:
			m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc.EncodeToString(key)
		case *rsa.PublicKey:
			m["kty"], m["n"], m["e"] = "RSA", enc.EncodeToString(key.N.Bytes()), enc.EncodeToString(big.NewInt(int64(key.E)).Bytes())
		case *ecdsa.PublicKey:
			b, _ := key.Bytes() // 0x04 || x || y: a P-256 key parseJWK checked
			m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", enc.EncodeToString(b[1:33]), enc.EncodeToString(b[33:])
		}
		keys = append(keys, m)
	}
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	return doc
}
