package http

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// The fuzz targets' credentials; the seed corpora in testdata/fuzz are
// signed with them.
const (
	fuzzAdminToken = "fuzz-admin-token"
	fuzzSecret     = "fuzz-secret-0123456789abcdef0123"
)

// fuzzAuth is an authenticator with what the oracle needs to know of it.
type fuzzAuth struct {
	name string
	a    *authenticator
	algs []string
	keys *JWKS
}

// fuzzAuths returns an HS256-only authenticator and one that also takes
// the test JWKS (EdDSA kid "ed", RS256 kid "rsa").
func fuzzAuths(tb testing.TB, userHeader bool) (hsOnly, mixed fuzzAuth) {
	keys := LoadTestKeys(tb)
	hsOnly = fuzzAuth{name: "hs256", algs: []string{algHS256},
		a: newAuthenticatorOptions(authOptions{adminToken: fuzzAdminToken, jwtSecret: []byte(fuzzSecret), userHeader: userHeader})}
	mixed = fuzzAuth{name: "mixed", algs: []string{algHS256, algEdDSA, algRS256}, keys: keys.JWKS,
		a: newAuthenticatorOptions(authOptions{adminToken: fuzzAdminToken, jwtSecret: []byte(fuzzSecret), userHeader: userHeader,
			buyer: BuyerAuth{JWKS: keys.JWKS}})}
	return hsOnly, mixed
}

// tokenView is the oracle's own reading of a compact JWS: strict
// base64url segments, JSON objects for header and claims.
type tokenView struct {
	header map[string]json.RawMessage
	claims map[string]json.RawMessage
}

func viewToken(tok string) (tokenView, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tokenView{}, false
	}
	var v tokenView
	enc := base64.RawURLEncoding.Strict()
	for i, dst := range []*map[string]json.RawMessage{&v.header, &v.claims} {
		b, err := enc.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil || *dst == nil {
			return tokenView{}, false
		}
	}
	if _, err := enc.DecodeString(parts[2]); err != nil {
		return tokenView{}, false
	}
	return v, true
}

// str reads a string member; absent and null are "", false.
func str(m map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// date reads a NumericDate member: present reports the member, ok that it
// is a JSON number (not a string holding one, not null) within years 1970
// to 9999.
func date(m map[string]json.RawMessage, name string) (secs float64, present, ok bool) {
	raw, present := m[name]
	if !present {
		return 0, false, true
	}
	var n any
	if json.Unmarshal(raw, &n) != nil {
		return 0, true, false
	}
	if _, isNumber := n.(float64); !isNumber {
		return 0, true, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f >= maxUnixTime+1 {
		return 0, true, false
	}
	return f, true, true
}

// typedClaims reports whether the registered claims present have their
// types: strings for iss, sub and jti, a string or strings for aud.
func typedClaims(c map[string]json.RawMessage) bool {
	for _, name := range []string{"iss", "sub", "jti"} {
		if raw, ok := c[name]; ok && string(raw) != "null" {
			if _, ok := str(c, name); !ok {
				return false
			}
		}
	}
	if raw, ok := c["aud"]; ok && string(raw) != "null" {
		var one string
		var many []any
		if json.Unmarshal(raw, &one) != nil {
			if json.Unmarshal(raw, &many) != nil {
				return false
			}
			for _, a := range many {
				if _, ok := a.(string); !ok {
					return false
				}
			}
		}
	}
	return true
}

// checkAccepted fails t unless tok, just accepted for user, meets the
// contract: an accepted algorithm with its own key, exp present and not
// past (with the 30 s skew), nbf not future, sub the user and a valid id.
func checkAccepted(t *testing.T, fa fuzzAuth, tok, user string, before, after time.Time) {
	t.Helper()
	fail := func(why string) { t.Fatalf("%s accepted %q for %q: %s", fa.name, tok, user, why) }
	if len(tok) > maxTokenLen {
		fail("longer than the limit")
	}
	v, ok := viewToken(tok)
	if !ok {
		fail("not a well-formed compact JWS")
	}
	alg, _ := str(v.header, "alg")
	if !slices.Contains(fa.algs, alg) {
		fail("algorithm " + alg + " is not accepted")
	}
	if _, ok := v.header["crit"]; ok {
		fail("crit header")
	}
	if alg != algHS256 {
		kid, hasKid := str(v.header, "kid")
		_, kidMember := v.header["kid"]
		switch {
		case hasKid:
			if k := slices.IndexFunc(fa.keys.all(), func(k jwk) bool { return k.kid == kid && k.alg == alg }); k < 0 {
				fail("kid " + kid + " names no " + alg + " key")
			}
		case kidMember || fa.keys.Len() != 1:
			fail("no usable kid")
		}
	}
	exp, present, ok := date(v.claims, "exp")
	if !present || !ok {
		fail("exp missing or malformed")
	}
	if exp <= float64(before.Unix())-31 {
		fail("expired")
	}
	if nbf, present, ok := date(v.claims, "nbf"); present && (!ok || nbf >= float64(after.Unix())+31) {
		fail("nbf malformed or in the future")
	}
	if _, _, ok := date(v.claims, "iat"); !ok {
		fail("iat malformed")
	}
	if sub, _ := str(v.claims, "sub"); sub != user || !surge.ValidID(sub) {
		fail("sub is not the user")
	}
	if !typedClaims(v.claims) {
		fail("a registered claim has the wrong type")
	}
}

// mustAccept reports whether the contract requires header.claims, signed
// by the right key, to be accepted: a clean header for alg and a claims
// set comfortably inside its validity (a minute from either edge).
func mustAccept(header, claims map[string]json.RawMessage, alg string, now time.Time) bool {
	if header == nil || claims == nil {
		return false
	}
	if a, _ := str(header, "alg"); a != alg {
		return false
	}
	if _, ok := header["crit"]; ok {
		return false
	}
	if alg != algHS256 {
		if kid, ok := str(header, "kid"); !ok || kid != "ed" {
			return false
		}
	}
	exp, present, ok := date(claims, "exp")
	if !present || !ok || exp < float64(now.Add(time.Minute).Unix()) {
		return false
	}
	if nbf, present, ok := date(claims, "nbf"); !ok || present && nbf > float64(now.Add(-time.Minute).Unix()) {
		return false
	}
	if _, _, ok := date(claims, "iat"); !ok {
		return false
	}
	sub, _ := str(claims, "sub")
	return surge.ValidID(sub) && typedClaims(claims)
}

func signEd25519(key ed25519.PrivateKey, header, claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	return in + "." + enc.EncodeToString(ed25519.Sign(key, []byte(in)))
}

func decodeObject(s string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(s), &m) != nil {
		return nil
	}
	return m
}

// FuzzJWT feeds arbitrary tokens, and tokens built from arbitrary header
// and claims JSON signed with the right keys, to the buyer-token verifier.
// It never panics; a token it accepts meets the contract (checkAccepted);
// a clean token inside its validity is accepted (mustAccept); a token
// HMAC-signed with public key bytes is never accepted.
func FuzzJWT(f *testing.F) {
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	f.Add("", `{"alg":"HS256","typ":"JWT"}`, `{"sub":"alice","exp":`+exp+`}`)
	f.Add("a.b.c", `{"alg":"EdDSA","kid":"ed"}`, `{"sub":"bob","exp":`+exp+`,"nbf":0,"iat":0}`)
	// Times that are not JSON numbers: a string of digits, null.
	f.Add("", `{"alg":"HS256"}`, `{"sub":"alice","exp":"`+exp+`"}`)
	f.Add("", `{"alg":"EdDSA","kid":"ed"}`, `{"sub":"bob","exp":`+exp+`,"nbf":null,"iat":"0"}`)
	hsOnly, mixed := fuzzAuths(f, false)
	keys := LoadTestKeys(f)
	pubDER, err := x509.MarshalPKIXPublicKey(&keys.RSA.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	edPub := []byte(keys.Ed25519.Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, tok, header, claims string) {
		before := time.Now()
		verify := func(fa fuzzAuth, tok string) bool {
			user, err := fa.a.verifyJWT(tok)
			if err == nil {
				checkAccepted(t, fa, tok, user, before, time.Now())
			} else if user != "" {
				t.Fatalf("%s: error %v with user %q", fa.name, err, user)
			}
			return err == nil
		}
		verify(hsOnly, tok)
		verify(mixed, tok)

		h, c := decodeObject(header), decodeObject(claims)
		hs := hmacToken(header, claims, []byte(fuzzSecret))
		short := len(hs) <= maxTokenLen
		if ok := verify(hsOnly, hs); !ok && short && mustAccept(h, c, algHS256, before) {
			t.Fatalf("hs256 refused a clean HS256 token: header %s claims %s", header, claims)
		}
		if ok := verify(mixed, hs); !ok && short && mustAccept(h, c, algHS256, before) {
			t.Fatalf("mixed refused a clean HS256 token: header %s claims %s", header, claims)
		}
		ed := signEd25519(keys.Ed25519, header, claims)
		if verify(hsOnly, ed) {
			t.Fatal("hs256 accepted an Ed25519 signature")
		}
		if ok := verify(mixed, ed); !ok && len(ed) <= maxTokenLen && mustAccept(h, c, algEdDSA, before) {
			t.Fatalf("mixed refused a clean EdDSA token: header %s claims %s", header, claims)
		}
		// Algorithm confusion: an HMAC keyed with public key material.
		for _, pub := range [][]byte{pubPEM, pubDER, edPub, keys.JWKSJSON} {
			if confused := hmacToken(header, claims, pub); verify(mixed, confused) {
				t.Fatalf("accepted an HMAC keyed with public key bytes: %q", confused)
			}
		}
	})
}

// FuzzAuthorization feeds arbitrary Authorization and X-User-ID values to
// identify. It never panics and answers either an error or exactly one
// identity: the operator only for "Bearer " plus the exact admin token, a
// buyer only with a valid id, from a JWT that passes verifyJWT or, in
// header mode and with no bearer token, from X-User-ID itself.
func FuzzAuthorization(f *testing.F) {
	f.Add("Bearer "+fuzzAdminToken, "", false)
	f.Add("bearer "+fuzzAdminToken+" ", "alice", true)
	f.Add("", "alice", true)
	off, mixedOff := fuzzAuths(f, false)
	on, mixedOn := fuzzAuths(f, true)
	f.Fuzz(func(t *testing.T, authz, userID string, headerMode bool) {
		auths := []fuzzAuth{off, mixedOff}
		if headerMode {
			auths = []fuzzAuth{on, mixedOn}
		}
		r := &http.Request{Header: http.Header{}}
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if userID != "" {
			r.Header["X-User-Id"] = []string{userID}
		}
		const scheme = "Bearer "
		hasBearer := len(authz) > len(scheme) && strings.EqualFold(authz[:len(scheme)], scheme)
		isAdminToken := hasBearer && authz[len(scheme):] == fuzzAdminToken
		for _, fa := range auths {
			before := time.Now()
			id, err := fa.a.identify(r)
			switch {
			case err != nil:
				if id != (identity{}) {
					t.Fatalf("%s: error %v with identity %+v", fa.name, err, id)
				}
				if isAdminToken {
					t.Fatalf("%s: the admin token was refused: %v", fa.name, err)
				}
				if !hasBearer && headerMode && surge.ValidID(userID) {
					t.Fatalf("%s: a valid X-User-ID %q was refused in header mode: %v", fa.name, userID, err)
				}
			case id.admin:
				if id.user != "" || !isAdminToken {
					t.Fatalf("%s: admin identity %+v for Authorization %q", fa.name, id, authz)
				}
			case hasBearer:
				if isAdminToken {
					t.Fatalf("%s: the admin token identified buyer %q", fa.name, id.user)
				}
				// The buyer comes from the token, never from X-User-ID.
				checkAccepted(t, fa, authz[len(scheme):], id.user, before, time.Now())
			default:
				if !headerMode || id.user != userID || !surge.ValidID(id.user) {
					t.Fatalf("%s: buyer %q without a bearer token (X-User-ID %q, header mode %v)", fa.name, id.user, userID, headerMode)
				}
			}
			// A bearer token alone decides: X-User-ID changes nothing.
			if hasBearer {
				r2 := &http.Request{Header: http.Header{"Authorization": {authz}}}
				id2, err2 := fa.a.identify(r2)
				if id2 != id || (err2 == nil) != (err == nil) {
					t.Fatalf("%s: X-User-ID %q changed the answer for Authorization %q", fa.name, userID, authz)
				}
			}
		}
	})
}
