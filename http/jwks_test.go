package http

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func jwksDoc(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// with returns a copy of m with the given members set (nil deletes).
func with(m map[string]any, kv ...any) map[string]any {
	c := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func TestParseJWKS(t *testing.T) {
	k := LoadTestKeys(t)
	ed := PublicJWK("ed", k.Ed25519.Public())
	rs := PublicJWK("rsa", &k.RSA.PublicKey)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es := PublicJWK("ec", &p256.PublicKey)
	enc := base64.RawURLEncoding

	t.Run("valid", func(t *testing.T) {
		for _, c := range []struct {
			name string
			doc  []byte
			algs []string
		}{
			{"ed25519 and rsa", jwksDoc(t, ed, rs), []string{algEdDSA, algRS256}},
			{"ed25519, rsa and P-256", jwksDoc(t, ed, rs, es), []string{algEdDSA, algRS256, algES256}},
			{"P-256 with use, alg and key_ops", jwksDoc(t, with(es, "use", "sig", "alg", "ES256", "key_ops", []string{"verify"})), []string{algES256}},
			{"one key without kid", jwksDoc(t, with(ed, "kid", nil)), []string{algEdDSA}},
			{"use, alg and key_ops", jwksDoc(t, with(rs, "use", "sig", "alg", "RS256", "key_ops", []string{"verify"})), []string{algRS256}},
			{"ed25519 alg EdDSA", jwksDoc(t, with(ed, "alg", "EdDSA")), []string{algEdDSA}},
			{"public parameters we ignore", jwksDoc(t, with(rs, "x5t", "abc", "x5c", []string{"MIIB"})), []string{algRS256}},
			{"other top-level members", []byte(`{"keys":[` + string(mustJSON(t, ed)) + `],"issuer":"x"}`), []string{algEdDSA}},
		} {
			ks, err := ParseJWKS(c.doc)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := ks.algorithms(); !equalStrings(got, c.algs) {
				t.Errorf("%s: algorithms %v, want %v", c.name, got, c.algs)
			}
		}
	})

	var ec *ecdsa.PrivateKey
	weakRSA := map[string]any{"kty": "RSA", "kid": "weak", "n": enc.EncodeToString(k.RSA.N.Bytes()[:128]), "e": "AQAB"}
	ec, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		doc  []byte
		want string // in the error
	}{
		{"empty file", nil, "not a JSON key set"},
		{"not JSON", []byte("-----BEGIN PUBLIC KEY-----"), "not a JSON key set"},
		{"no keys member", []byte(`{}`), "no keys"},
		{"empty keys", []byte(`{"keys":[]}`), "no keys"},
		{"keys not an array", []byte(`{"keys":{}}`), "not a JSON key set"},
		{"trailing data", append(jwksDoc(t, ed), "{}"...), "trailing data"},
		{"key not an object", []byte(`{"keys":[null]}`), "not a JSON object"},
		{"two keys, one without kid", jwksDoc(t, ed, with(rs, "kid", nil)), "no kid"},
		{"duplicate kid", jwksDoc(t, ed, with(rs, "kid", "ed")), "duplicate kid"},
		{"empty kid", jwksDoc(t, with(ed, "kid", "")), "empty kid"},
		{"kid not a string", jwksDoc(t, with(ed, "kid", 7)), "malformed key"},
		{"missing kty", jwksDoc(t, with(ed, "kty", nil)), "missing kty"},
		{"private ed25519 key", jwksDoc(t, with(ed, "d", enc.EncodeToString(k.Ed25519.Seed()))), "private"},
		{"private rsa key", jwksDoc(t, with(rs, "d", "AQAB", "p", "AQAB")), "private"},
		{"symmetric key", jwksDoc(t, map[string]any{"kty": "oct", "k": "c2VjcmV0"}), "private or symmetric"},
		{"oct without k", jwksDoc(t, map[string]any{"kty": "oct"}), "not supported"},
		{"P-384 key", jwksDoc(t, PublicJWK("p384", &ec.PublicKey)), "not supported"},
		{"P-256 key with P-384 coordinates", jwksDoc(t, with(PublicJWK("p384", &ec.PublicKey), "crv", "P-256")), "32-byte"},
		{"P-256 point off the curve", jwksDoc(t, with(es, "y", es["x"])), "not a P-256 public key"},
		{"P-256 without y", jwksDoc(t, with(es, "y", nil)), "32-byte"},
		{"padded P-256 x", jwksDoc(t, with(es, "x", es["x"].(string)+"=")), "32-byte"},
		{"private P-256 key", jwksDoc(t, with(es, "d", enc.EncodeToString(make([]byte, 32)))), "private"},
		{"P-256 key for ES384", jwksDoc(t, with(es, "alg", "ES384")), "does not match"},
		{"P-256 key for HS256", jwksDoc(t, with(es, "alg", "HS256")), "does not match"},
		{"X25519 key", jwksDoc(t, with(ed, "crv", "X25519")), "not supported"},
		{"Ed448 key", jwksDoc(t, with(ed, "crv", "Ed448")), "not supported"},
		{"short x", jwksDoc(t, with(ed, "x", enc.EncodeToString(make([]byte, 31)))), "32-byte"},
		{"padded x", jwksDoc(t, with(ed, "x", base64.URLEncoding.EncodeToString(k.Ed25519.Public().(ed25519.PublicKey)))), "32-byte"},
		{"std base64 x", jwksDoc(t, with(ed, "x", "+/"+ed["x"].(string)[2:])), "32-byte"},
		{"encryption key", jwksDoc(t, with(rs, "use", "enc")), "use"},
		{"key_ops without verify", jwksDoc(t, with(rs, "key_ops", []string{"encrypt"})), "key_ops"},
		{"rsa key for RS512", jwksDoc(t, with(rs, "alg", "RS512")), "does not match"},
		{"rsa key for PS256", jwksDoc(t, with(rs, "alg", "PS256")), "does not match"},
		{"rsa key for HS256", jwksDoc(t, with(rs, "alg", "HS256")), "does not match"},
		{"ed25519 key for RS256", jwksDoc(t, with(ed, "alg", "RS256")), "does not match"},
		{"rsa alg none", jwksDoc(t, with(rs, "alg", "none")), "does not match"},
		{"1024-bit rsa", jwksDoc(t, weakRSA), "1024 bits"},
		{"rsa modulus with a leading zero", jwksDoc(t, with(rs, "n", enc.EncodeToString(append([]byte{0}, k.RSA.N.Bytes()...)))), "modulus"},
		{"even rsa modulus", jwksDoc(t, with(rs, "n", enc.EncodeToString(evenModulus(k.RSA.N.Bytes())))), "even"},
		{"rsa exponent 1", jwksDoc(t, with(rs, "e", "AQ")), "exponent"},
		{"even rsa exponent", jwksDoc(t, with(rs, "e", "AQAA")), "exponent"},
		{"huge rsa exponent", jwksDoc(t, with(rs, "e", enc.EncodeToString([]byte{1, 0, 0, 0, 1}))), "exponent"},
		{"missing n", jwksDoc(t, with(rs, "n", nil)), "modulus"},
	} {
		_, err := ParseJWKS(c.doc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func evenModulus(n []byte) []byte {
	n = append([]byte(nil), n...)
	n[len(n)-1] &^= 1
	return n
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestLoadJWKS(t *testing.T) {
	k := LoadTestKeys(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, k.JWKSJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadJWKS(good)
	if err != nil || ks.Len() != 2 {
		t.Fatalf("LoadJWKS = %v keys, %v; want 2 keys", ks.Len(), err)
	}
	if _, err := LoadJWKS(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, []byte(`{"keys":[`+strings.Repeat(" ", maxJWKSFile)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJWKS(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","k":"eA"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJWKS(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v, want the path in the error", err)
	}
}

// tokenKit signs test tokens.
type tokenKit struct {
	t      *testing.T
	keys   TestKeys
	secret []byte
}

func (k tokenKit) sign(method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	k.t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	maps.Copy(tok.Header, header)
	s, err := tok.SignedString(key)
	if err != nil {
		k.t.Fatalf("sign: %v", err)
	}
	return s
}

// hmacToken signs header.claims with HMAC-SHA256 under key, whatever the
// header says: the tool of algorithm-confusion attacks.
func hmacToken(header, claims string, key []byte) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(in))
	return in + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestBuyerTokenVerification(t *testing.T) {
	keys := LoadTestKeys(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	k := tokenKit{t: t, keys: keys, secret: secret}
	now := time.Now()
	in := func(d time.Duration) int64 { return now.Add(d).Unix() }
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "exp": in(time.Hour)}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	kid := func(id string) map[string]any { return map[string]any{"kid": id} }
	ed := func(header map[string]any, c jwt.MapClaims) string {
		return k.sign(jwt.SigningMethodEdDSA, keys.Ed25519, header, c)
	}
	rs := func(header map[string]any, c jwt.MapClaims) string {
		return k.sign(jwt.SigningMethodRS256, keys.RSA, header, c)
	}
	hs := func(header map[string]any, c jwt.MapClaims) string {
		return k.sign(jwt.SigningMethodHS256, secret, header, c)
	}

	pubDER, err := x509.MarshalPKIXPublicKey(&keys.RSA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&keys.RSA.PublicKey)})
	edPub := []byte(keys.Ed25519.Public().(ed25519.PublicKey))
	rsaJWK := mustJSON(t, PublicJWK("rsa", &keys.RSA.PublicKey))
	payload := `{"sub":"alice","exp":` + jsonInt(in(time.Hour)) + `}`
	// Algorithm confusion: HS256 "signed" with the bytes of a public key
	// (the server's own JWKS) in every form an attacker might guess.
	var confused []string
	for _, pub := range [][]byte{pubPEM, pkcs1PEM, pubDER, keys.RSA.N.Bytes(), edPub, keys.JWKSJSON, rsaJWK} {
		for _, header := range []string{`{"alg":"HS256"}`, `{"alg":"HS256","kid":"rsa"}`, `{"alg":"HS256","kid":"ed"}`} {
			confused = append(confused, hmacToken(header, payload, pub))
		}
	}

	secretOnly := newAuthenticatorOptions(authOptions{jwtSecret: secret})
	jwksOnly := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{JWKS: keys.JWKS}})
	both := newAuthenticatorOptions(authOptions{jwtSecret: secret, buyer: BuyerAuth{JWKS: keys.JWKS}})
	strict := newAuthenticatorOptions(authOptions{jwtSecret: secret,
		buyer: BuyerAuth{JWKS: keys.JWKS, Issuer: "https://id.example", Audience: "surge"}})
	edOnlySet, err := ParseJWKS(jwksDoc(t, PublicJWK("", keys.Ed25519.Public())))
	if err != nil {
		t.Fatal(err)
	}
	single := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{JWKS: edOnlySet}})
	none := newAuthenticatorOptions(authOptions{})

	type auths = map[string]*authenticator
	all := auths{"secret": secretOnly, "jwks": jwksOnly, "both": both, "strict": strict, "single": single, "none": none}
	only := func(names ...string) auths {
		m := auths{}
		for _, n := range names {
			m[n] = all[n]
		}
		return m
	}
	cases := []struct {
		name   string
		token  string
		accept auths // the authenticators that accept it; every other refuses
	}{
		{"HS256", hs(nil, claims()), only("secret", "both")},
		{"HS256 with a kid", hs(kid("rsa"), claims()), only("secret", "both")},
		{"EdDSA by kid", ed(kid("ed"), claims()), only("jwks", "both")},
		{"RS256 by kid", rs(kid("rsa"), claims()), only("jwks", "both")},
		{"EdDSA without kid, one-key set", ed(nil, claims()), only("single")},
		{"EdDSA with an unknown kid", ed(kid("nope"), claims()), nil},
		{"EdDSA with the RSA key's kid", ed(kid("rsa"), claims()), nil},
		{"RS256 with the Ed25519 key's kid", rs(kid("ed"), claims()), nil},
		{"RS256 without kid, two-key set", rs(nil, claims()), nil},
		{"kid not a string", ed(map[string]any{"kid": 1}, claims()), nil},
		{"RS256 by a key outside the set", k.sign(jwt.SigningMethodRS256, keys.OtherRSA, kid("rsa"), claims()), nil},
		{"PS256 by the set's RSA key", k.sign(jwt.SigningMethodPS256, keys.RSA, kid("rsa"), claims()), nil},
		{"RS512 by the set's RSA key", k.sign(jwt.SigningMethodRS512, keys.RSA, kid("rsa"), claims()), nil},
		{"HS384 with the secret", k.sign(jwt.SigningMethodHS384, secret, nil, claims()), nil},
		{"alg none", k.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("ed"), claims()), nil},
		{"alg None", unsigned(`{"alg":"None","kid":"ed"}`, payload), nil},
		{"no alg", hmacToken(`{"kid":"ed"}`, payload, secret), nil},
		{"alg not a string", hmacToken(`{"alg":["HS256"]}`, payload, secret), nil},
		{"crit header", hs(map[string]any{"crit": []string{"exp"}}, claims()), nil},
		{"b64 false", hs(map[string]any{"b64": false, "crit": []string{"b64"}}, claims()), nil},
		{"expired", ed(kid("ed"), claims("exp", in(-time.Minute))), nil},
		{"expired within the skew", ed(kid("ed"), claims("exp", in(-10*time.Second))), only("jwks", "both")},
		{"no exp", ed(kid("ed"), claims("exp", nil)), nil},
		{"exp a string", ed(kid("ed"), claims("exp", "2100-01-01")), nil},
		{"exp 1e19", ed(kid("ed"), claims("exp", 1e19)), nil},
		{"exp past year 9999", ed(kid("ed"), claims("exp", 253402300800)), nil},
		{"nbf in the future", ed(kid("ed"), claims("nbf", in(time.Minute))), nil},
		{"nbf within the skew", ed(kid("ed"), claims("nbf", in(10*time.Second))), only("jwks", "both")},
		{"nbf 1e19", ed(kid("ed"), claims("nbf", 1e19)), nil},
		{"nbf -1e19", ed(kid("ed"), claims("nbf", -1e19)), nil},
		{"iat past year 9999", ed(kid("ed"), claims("iat", 1e15)), nil},
		{"upper-case EXP only", hmacToken(`{"alg":"HS256"}`, `{"sub":"alice","EXP":4102444800}`, secret), nil},
		{"upper-case EXP in the past", hmacToken(`{"alg":"HS256"}`, `{"sub":"alice","exp":4102444800,"EXP":1}`, secret), only("secret", "both")},
		{"upper-case SUB", hmacToken(`{"alg":"HS256"}`, `{"SUB":"alice","exp":4102444800}`, secret), nil},
		{"duplicate exp, last expired", hmacToken(`{"alg":"HS256"}`, `{"sub":"alice","exp":4102444800,"exp":1}`, secret), nil},
		{"duplicate alg, last none", hmacToken(`{"alg":"HS256","alg":"none"}`, payload, secret), nil},
		{"claims null", hmacToken(`{"alg":"HS256"}`, `null`, secret), nil},
		{"claims an array", hmacToken(`{"alg":"HS256"}`, `[]`, secret), nil},
		{"sub invalid", ed(kid("ed"), claims("sub", "../admin")), nil},
		{"padded segments", padded(hs(nil, claims())), nil},
		{"non-canonical base64 signature", nonCanonical(hs(nil, claims())), nil},
		{"oversized token", hs(nil, claims("pad", strings.Repeat("x", maxTokenLen))), nil},
		{"iss and aud", ed(kid("ed"), claims("iss", "https://id.example", "aud", "surge")), only("jwks", "both", "strict")},
		{"aud among several", rs(kid("rsa"), claims("iss", "https://id.example", "aud", []string{"other", "surge"})), only("jwks", "both", "strict")},
		{"HS256 with iss and aud", hs(nil, claims("iss", "https://id.example", "aud", "surge")), only("secret", "both", "strict")},
		{"wrong iss", ed(kid("ed"), claims("iss", "https://evil.example", "aud", "surge")), only("jwks", "both")},
		{"no iss", ed(kid("ed"), claims("aud", "surge")), only("jwks", "both")},
		{"wrong aud", ed(kid("ed"), claims("iss", "https://id.example", "aud", "surge-staging")), only("jwks", "both")},
		{"no aud", ed(kid("ed"), claims("iss", "https://id.example")), only("jwks", "both")},
		{"aud not strings", ed(kid("ed"), claims("iss", "https://id.example", "aud", []any{"surge", 1})), nil},
	}
	for i, tok := range confused {
		cases = append(cases, struct {
			name   string
			token  string
			accept auths
		}{"HS256 signed with public key bytes " + jsonInt(int64(i)), tok, nil})
	}
	for _, c := range cases {
		for name, a := range all {
			user, err := a.verifyJWT(c.token)
			if _, want := c.accept[name]; want {
				if err != nil || user != "alice" {
					t.Errorf("%s: authenticator %q refused: %v", c.name, name, err)
				}
			} else if err == nil {
				t.Errorf("%s: authenticator %q accepted the token for %q", c.name, name, user)
			}
		}
	}
	if _, err := none.verifyJWT(hs(nil, claims())); !errors.Is(err, errNoJWT) {
		t.Errorf("no secret and no JWKS: %v, want errNoJWT", err)
	}
}

func TestJWKSLookup(t *testing.T) {
	keys := LoadTestKeys(t)
	ks := keys.JWKS
	for _, c := range []struct {
		kid    string
		hasKid bool
		alg    string
		ok     bool
	}{
		{"ed", true, algEdDSA, true},
		{"rsa", true, algRS256, true},
		{"ed", true, algRS256, false},
		{"rsa", true, algEdDSA, false},
		{"rsa", true, algHS256, false},
		{"", true, algEdDSA, false},
		{"", false, algEdDSA, false},
		{"other", true, algRS256, false},
	} {
		key, err := ks.lookup(c.kid, c.hasKid, c.alg)
		if (err == nil) != c.ok || (err == nil) == (key == nil) {
			t.Errorf("lookup(%q, %v, %s) = %v, %v; want ok %v", c.kid, c.hasKid, c.alg, key, err, c.ok)
		}
	}
	var nilSet *JWKS
	if _, err := nilSet.lookup("ed", true, algEdDSA); err == nil {
		t.Error("a nil set found a key")
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

func unsigned(header, claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

// nonCanonical sets the unused low bits of the signature's last base64
// character: lenient decoders read the same bytes, strict ones refuse.
func nonCanonical(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[last|3])
}

// padded rewrites a token's segments with base64 padding.
func padded(tok string) string {
	parts := strings.Split(tok, ".")
	for i, p := range parts {
		if n := len(p) % 4; n != 0 {
			parts[i] = p + strings.Repeat("=", 4-n)
		}
	}
	return strings.Join(parts, ".")
}

// TestJWKSMembersAreExact: docs/api.md: "`use`, if present, is `sig`" or
// the server refuses to start, and "`kid` is required and unique". JWK
// member names are case-sensitive (RFC 7517 §4), so "Use" and "KID" are
// other members, which a standard reader ignores; encoding/json matched
// them case-insensitively, the last one winning: an encryption key
// ("use":"enc") passed as a signing key thanks to a "Use":"sig" beside
// it, and a key read as kid "a" everywhere else was kid "b" here.
func TestJWKSMembersAreExact(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	x := base64.RawURLEncoding.EncodeToString(pub)
	if _, err := ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","use":"enc","Use":"sig"}]}`)); err == nil {
		t.Error(`accepted a key whose use is "enc" (beside a member "Use":"sig")`)
	}
	ks, err := ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","KID":"b"}]}`))
	if err == nil && ks.keys[0].kid != "a" {
		t.Errorf(`the key's kid is "a"; Surge reads %q`, ks.keys[0].kid)
	}
	if _, err := ParseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","use":"enc","use":"sig"}]}`)); err == nil {
		t.Error(`accepted a key with "use" twice, "enc" first`)
	}
}

// TestJWKSSetIsExact: the key set's own "keys" member is read as exactly
// as each key's members (RFC 7517 §4, §5: names are case-sensitive). With
// encoding/json, "Keys" passed for "keys", and of two "keys" members the
// last won: a file whose first "keys" held private key material (which
// docs/api.md says is refused) started, and another reader of the same
// file would see other keys than Surge.
func TestJWKSSetIsExact(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	enc := base64.RawURLEncoding
	x := enc.EncodeToString(pub)
	good := `{"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + x + `"}`
	private := `{"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + x + `","d":"` + enc.EncodeToString(priv.Seed()) + `"}`
	for name, doc := range map[string]string{
		`"Keys" for "keys"`: `{"Keys":[` + good + `]}`,
		`"keys" twice`:      `{"keys":[` + good + `],"keys":[` + good + `]}`,
		`"keys" twice, the first with a private key`: `{"keys":[` + private + `],"keys":[` + good + `]}`,
	} {
		if _, err := ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
	if _, err := ParseJWKS([]byte(`{"keys":[` + good + `]}`)); err != nil {
		t.Errorf("the plain set: %v", err)
	}
}
