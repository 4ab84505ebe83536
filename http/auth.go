package http

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge"
)

// identity is who a request acts as: a buyer, or the operator.
type identity struct {
	user  string
	admin bool
}

// BuyerAuth configures buyer JWTs beyond the HS256 secret of
// Config.JWTSecret: public keys that sign them, and the issuer and audience
// they must name. The zero value adds nothing.
type BuyerAuth struct {
	// JWKS, when set, accepts EdDSA tokens signed by its Ed25519 keys and
	// RS256 tokens signed by its RSA keys, the key picked by the token's kid.
	JWKS *JWKS
	// Issuer, when set, is the iss claim every buyer token must carry.
	Issuer string
	// Audience, when set, must be the token's aud claim or one of its values.
	Audience string
}

// Limits of buyer tokens.
const (
	// jwtLeeway is the clock skew allowed on exp and nbf.
	jwtLeeway = 30 * time.Second
	// maxTokenLen bounds the work an unauthenticated token can cause; real
	// buyer tokens are a few hundred bytes.
	maxTokenLen = 8 << 10
	// maxUnixTime is 9999-12-31T23:59:59Z, the last instant a token's
	// exp, nbf or iat may name.
	maxUnixTime = 253402300799
)

// authOptions is everything the authenticator is built from.
type authOptions struct {
	adminToken string
	// userHeader trusts X-User-ID (development only).
	userHeader bool
	// jwtSecret enables HS256 buyer tokens.
	jwtSecret []byte
	buyer     BuyerAuth
}

// authenticator resolves identities. Admin requests carry the admin token
// as a bearer token; buyers carry a JWT whose sub is their id (HS256 with
// the shared secret, or EdDSA/RS256 with a key of the JWKS), or, in
// development mode only, an X-User-ID header.
type authenticator struct {
	adminHash  [32]byte
	noAdmin    bool // the public listener of a split deployment: no token is admin
	userHeader bool
	hmacKey    []byte // empty: HS256 is refused
	keys       *JWKS  // nil: EdDSA and RS256 are refused
	parser     *jwt.Parser
}

// newAuthenticatorOptions builds an authenticator. The accepted algorithms
// are exactly those configured: HS256 if there is a secret, EdDSA and
// RS256 if the JWKS has keys of those types. Nothing else, alg none
// included, ever reaches signature verification.
func newAuthenticatorOptions(o authOptions) *authenticator {
	a := &authenticator{
		adminHash:  sha256.Sum256([]byte(o.adminToken)),
		userHeader: o.userHeader,
		hmacKey:    bytes.Clone(o.jwtSecret),
		keys:       o.buyer.JWKS,
	}
	var algs []string
	if len(a.hmacKey) > 0 {
		algs = append(algs, algHS256)
	}
	algs = append(algs, a.keys.algorithms()...)
	if len(algs) == 0 {
		return a // no buyer tokens: verifyJWT answers errNoJWT
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithStrictDecoding(),
	}
	if o.buyer.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.buyer.Issuer))
	}
	if o.buyer.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.buyer.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a
}

var (
	errNoIdentity = errors.New("missing credentials: send Authorization: Bearer <token>")
	errBadToken   = errors.New("invalid or expired token")
	errNotAdmin   = errors.New("this endpoint needs the admin token")
	errNoJWT      = errors.New("buyer tokens are not accepted: the server has no JWT secret or JWKS")
)

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return h[len(prefix):], true
	}
	return "", false
}

// isAdmin compares in constant time; hashing first hides the length too.
func (a *authenticator) isAdmin(token string) bool {
	if a.noAdmin {
		return false
	}
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], a.adminHash[:]) == 1
}

// admin authenticates an operator request.
func (a *authenticator) admin(r *http.Request) error {
	tok, ok := bearer(r)
	if !ok {
		return errNoIdentity
	}
	if !a.isAdmin(tok) {
		return errNotAdmin
	}
	return nil
}

// identify authenticates a buyer or the operator.
func (a *authenticator) identify(r *http.Request) (identity, error) {
	if tok, ok := bearer(r); ok {
		if a.isAdmin(tok) {
			return identity{admin: true}, nil
		}
		user, err := a.verifyJWT(tok)
		if err != nil {
			return identity{}, err
		}
		return identity{user: user}, nil
	}
	if a.userHeader {
		if u := r.Header.Get("X-User-ID"); u != "" {
			if !surge.ValidID(u) {
				return identity{}, errors.New("X-User-ID must match [A-Za-z0-9_-]{1,64}")
			}
			return identity{user: u}, nil
		}
	}
	return identity{}, errNoIdentity
}

// buyer authenticates a buyer; the operator is not one.
func (a *authenticator) buyer(r *http.Request) (string, error) {
	id, err := a.identify(r)
	if err != nil {
		return "", err
	}
	if id.admin {
		return "", errors.New("purchases need a buyer identity, not the admin token")
	}
	return id.user, nil
}

// buyerClaims are the claims of a buyer token.
type buyerClaims struct {
	jwt.RegisteredClaims
}

// UnmarshalJSON reads the registered claims by their exact names. Claim
// names are case-sensitive (RFC 7519 §4), but encoding/json matches struct
// fields case-insensitively: {"exp":<future>,"EXP":<past>} would otherwise
// mean whatever comes last. Duplicate names keep the last value, as RFC
// 7519 allows.
func (c *buyerClaims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("the claims are not a JSON object")
	}
	*c = buyerClaims{}
	for _, f := range [...]struct {
		name string
		dst  any
		date bool
	}{
		{"iss", &c.Issuer, false}, {"sub", &c.Subject, false}, {"aud", &c.Audience, false},
		{"exp", &c.ExpiresAt, true}, {"nbf", &c.NotBefore, true}, {"iat", &c.IssuedAt, true}, {"jti", &c.ID, false},
	} {
		if raw, ok := m[f.name]; ok {
			// The library reads a NumericDate through json.Number, which
			// also takes a string of digits, and null as absent; RFC 7519
			// §2 says a JSON number.
			if f.date && !isJSONNumber(raw) {
				return fmt.Errorf("claim %s: must be a number of seconds since the epoch", f.name)
			}
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return fmt.Errorf("claim %s: %w", f.name, err)
			}
		}
	}
	return nil
}

// isJSONNumber reports whether raw, a JSON value, is a number: numbers are
// the only values that start with a digit or a minus sign.
func isJSONNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

// Validate refuses times outside 1970 to 9999. The library converts the
// number to an integer without a range check, so an nbf of 1e19 (meant as
// "never") would otherwise come out as an instant long past.
func (c *buyerClaims) Validate() error {
	for _, d := range []*jwt.NumericDate{c.ExpiresAt, c.NotBefore, c.IssuedAt} {
		if d != nil && (d.Unix() < 0 || d.Unix() > maxUnixTime) {
			return errors.New("a time claim lies outside years 1970 to 9999")
		}
	}
	return nil
}

// verificationKey returns the key that must have signed t. The algorithm
// is already one of the accepted ones (the parser checks before calling);
// each algorithm has its own key, so no key serves two algorithms.
func (a *authenticator) verificationKey(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand must be refused.
		return nil, errors.New("critical header parameters are not supported")
	}
	switch alg := t.Method.Alg(); alg {
	case algHS256:
		if len(a.hmacKey) == 0 {
			return nil, errors.New("HS256 is not accepted")
		}
		return a.hmacKey, nil
	case algEdDSA, algRS256:
		if a.keys.Len() == 0 {
			return nil, fmt.Errorf("%s is not accepted", alg)
		}
		kid, hasKid := t.Header["kid"]
		s, ok := kid.(string)
		if hasKid && !ok {
			return nil, errors.New("kid must be a string")
		}
		return a.keys.lookup(s, hasKid, alg)
	default:
		return nil, fmt.Errorf("%s is not accepted", alg)
	}
}

// verifyJWT checks a buyer token and returns its subject.
func (a *authenticator) verifyJWT(tok string) (string, error) {
	if a.parser == nil {
		return "", errNoJWT
	}
	if len(tok) > maxTokenLen {
		return "", errBadToken
	}
	var claims buyerClaims
	if _, err := a.parser.ParseWithClaims(tok, &claims, a.verificationKey); err != nil {
		return "", errBadToken
	}
	if !surge.ValidID(claims.Subject) {
		return "", errors.New("token subject must be a user id matching [A-Za-z0-9_-]{1,64}")
	}
	return claims.Subject, nil
}
