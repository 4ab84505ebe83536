package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	// JWKS, when set, accepts EdDSA tokens signed by its Ed25519 keys, RS256
	// tokens signed by its RSA keys and ES256 tokens signed by its P-256
	// keys, the key picked by the token's kid.
	JWKS *JWKS
	// JWKSFile is the file JWKS was read from: Server.ReloadKeys reads it
	// again. Empty: JWKS is fixed.
	JWKSFile string
	// Remote, when set, is a key set fetched from a URL and kept fresh
	// ([FetchJWKS]); it takes the place of JWKS, which must then be nil.
	Remote *RemoteJWKS
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
	// jwtPreviousSecret is the secret a rotation replaced, still
	// accepted beside jwtSecret (ignored without it).
	jwtPreviousSecret []byte
	buyer             BuyerAuth
	// cacheSlots sizes the cache of verified tokens (0: the default).
	cacheSlots int
	// now is the clock of token validity (nil: time.Now); tests move it.
	now func() time.Time
	// checks counts the tokens checked in full (nil: not counted).
	checks *tokenChecks
	// prevKeys, when set, are the buyer keys in force before a reload:
	// kept, with their cache of verified tokens, if these options
	// configure the same keys (buyerKeysFor).
	prevKeys *buyerKeys
}

// authenticator resolves identities. Admin requests carry the admin token
// as a bearer token; buyers carry a JWT whose sub is their id (HS256 with
// the shared secret, or EdDSA/RS256/ES256 with a key of the JWKS), or, in
// development mode only, an X-User-ID header.
type authenticator struct {
	adminHash   [32]byte // the admin token's SHA-256
	adminSeed   maphash.Seed
	adminScreen uint64 // the admin token's hash under adminSeed
	noAdmin     bool   // the public listener of a split deployment: no token is admin
	userHeader  bool
	// buyers verifies buyer tokens; the listeners' copies share it, so a
	// key reload reaches them all.
	buyers *buyerKeys
}

// newAuthenticatorOptions builds an authenticator. The accepted algorithms
// are exactly those configured: HS256 if there is a secret, EdDSA, RS256
// and ES256 if the JWKS has keys of those types (all three with a fetched
// set, whose keys change). Nothing else, alg none included, ever reaches
// signature verification.
func newAuthenticatorOptions(o authOptions) *authenticator {
	seed := maphash.MakeSeed()
	return &authenticator{
		adminHash:   sha256.Sum256([]byte(o.adminToken)),
		adminSeed:   seed,
		adminScreen: maphash.String(seed, o.adminToken),
		userHeader:  o.userHeader,
		buyers:      buyerKeysFor(o),
	}
}

var (
	errNoIdentity = errors.New("missing credentials: send Authorization: Bearer <token>")
	errBadToken   = errors.New("invalid or expired token")
	errNotAdmin   = errors.New("this endpoint needs the admin token")
	// errNoAdminToken: an admin route called without a bearer token. It
	// names the admin token: a buyer who sent X-User-ID, and holds a
	// bearer token of its own, would read plain "missing credentials" as
	// "send yours".
	errNoAdminToken = errors.New("missing credentials: this endpoint needs the admin token, in an Authorization: Bearer header")
	// errBuyerNotAdmin: a buyer's token is good, but no admin's.
	errBuyerNotAdmin = errors.New("this endpoint needs the admin token, not a buyer's")
	errNoJWT         = errors.New("buyer tokens are not accepted: the server has no JWT secret or JWKS")
	// errUserHeaderOff: X-User-ID sent, but this server does not trust it;
	// the client took it for credentials, so say why it counts for none.
	errUserHeaderOff = errors.New("missing credentials: X-User-ID is accepted only by a server run with --insecure-user-header (development only); send a buyer token in an Authorization: Bearer header")
	// errAdminNotBuyer: the admin token is good, but no buyer's.
	errAdminNotBuyer = errors.New("purchases need a buyer identity, not the admin token")
)

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return h[len(prefix):], true
	}
	return "", false
}

// isAdmin tells whether token is the admin token without its time telling
// anything about the admin token: a keyed 64-bit hash (maphash, a random
// seed per process) screens it, in a time that depends only on the length
// of what the caller sent, and whether the screen passes says nothing to
// one who does not know the seed; only a token that passes is compared,
// in constant time. (A SHA-256 of every bearer token did the same at ten
// times the cost, on every buyer's request.)
func (a *authenticator) isAdmin(token string) bool {
	if a.noAdmin || maphash.String(a.adminSeed, token) != a.adminScreen {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], a.adminHash[:]) == 1
}

// errManyAuthorization: more than one Authorization header.
var errManyAuthorization = errors.New("send one Authorization header")

// oneAuthorization refuses a request with more than one Authorization
// header, as two Idempotency-Key or ticket headers are: bearer reads the
// first, which need not be the one a gateway in front checked or added.
func oneAuthorization(r *http.Request) error {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return fmt.Errorf("%w, not %d: which one to act on is ambiguous", errManyAuthorization, n)
	}
	return nil
}

// admin authenticates an operator request.
func (a *authenticator) admin(r *http.Request) error {
	if err := oneAuthorization(r); err != nil {
		return err
	}
	tok, ok := bearer(r)
	if !ok {
		return errNoAdminToken
	}
	if !a.isAdmin(tok) {
		// A buyer's good token is refused here too, but it is not
		// invalid: its challenge must not tell the client to drop it.
		if _, err := a.buyers.check(r.Context(), tok); err == nil {
			return errBuyerNotAdmin
		}
		return errNotAdmin
	}
	return nil
}

// identify authenticates a buyer or the operator.
func (a *authenticator) identify(r *http.Request) (identity, error) {
	if err := oneAuthorization(r); err != nil {
		return identity{}, err
	}
	if tok, ok := bearer(r); ok {
		if a.isAdmin(tok) {
			return identity{admin: true}, nil
		}
		user, err := a.buyers.verify(r.Context(), tok)
		if err != nil {
			return identity{}, err
		}
		return identity{user: user}, nil
	}
	if a.userHeader {
		// Two headers are refused, as two Idempotency-Key or ticket
		// headers are: reading the first would buy as the client's own
		// behind a gateway that adds the buyer's id after it.
		if us := r.Header.Values("X-User-ID"); len(us) > 1 {
			return identity{}, fmt.Errorf("send one X-User-ID header, not %d", len(us))
		}
		if u := r.Header.Get("X-User-ID"); u != "" {
			if !surge.ValidID(u) {
				return identity{}, errors.New("X-User-ID must match [A-Za-z0-9_-]{1,64}")
			}
			return identity{user: u}, nil
		}
	} else if len(r.Header.Values("X-User-ID")) > 0 {
		return identity{}, errUserHeaderOff
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
		return "", errAdminNotBuyer
	}
	return id.user, nil
}

// buyerClaims are the claims of a buyer token.
type buyerClaims struct {
	jwt.RegisteredClaims
}

// UnmarshalJSON reads the registered claims by their exact names, in one
// pass of the json/v2 decoder. Claim names are case-sensitive (RFC 7519
// §4), but encoding/json matches struct fields case-insensitively:
// {"exp":<future>,"EXP":<past>} would otherwise mean whatever comes last;
// json/v2 matches names exactly. Duplicate names keep the last value, as
// RFC 7519 allows, and strings are read as encoding/json reads them.
func (c *buyerClaims) UnmarshalJSON(b []byte) error {
	var raw struct {
		Iss *string        `json:"iss"`
		Sub *string        `json:"sub"`
		Aud jsontext.Value `json:"aud"`
		Exp jsontext.Value `json:"exp"`
		Nbf jsontext.Value `json:"nbf"`
		Iat jsontext.Value `json:"iat"`
		Jti *string        `json:"jti"`
		_   struct{}       `json:"-"`
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("the claims are not a JSON object")
	}
	if err := jsonv2.Unmarshal(b, &raw, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)); err != nil {
		return err
	}
	*c = buyerClaims{}
	for _, s := range [...]struct {
		src *string
		dst *string
	}{{raw.Iss, &c.Issuer}, {raw.Sub, &c.Subject}, {raw.Jti, &c.ID}} {
		if s.src != nil {
			*s.dst = *s.src
		}
	}
	if raw.Aud != nil {
		if err := c.Audience.UnmarshalJSON(raw.Aud); err != nil {
			return fmt.Errorf("claim aud: %w", err)
		}
	}
	for _, f := range [...]struct {
		name string
		raw  jsontext.Value
		dst  **jwt.NumericDate
	}{{"exp", raw.Exp, &c.ExpiresAt}, {"nbf", raw.Nbf, &c.NotBefore}, {"iat", raw.Iat, &c.IssuedAt}} {
		if f.raw == nil {
			continue
		}
		// The library reads a NumericDate through json.Number, which also
		// takes a string of digits, and null as absent; RFC 7519 §2 says
		// a JSON number.
		if !isJSONNumber(f.raw) {
			return fmt.Errorf("claim %s: must be a number of seconds since the epoch", f.name)
		}
		// As jwt.NumericDate.UnmarshalJSON reads it, without its detour
		// through encoding/json.
		secs, err := strconv.ParseFloat(string(f.raw), 64)
		if err != nil {
			return fmt.Errorf("claim %s: %w", f.name, err)
		}
		whole, frac := math.Modf(secs)
		*f.dst = jwt.NewNumericDate(time.Unix(int64(whole), int64(frac*1e9)))
	}
	return nil
}

// isJSONNumber reports whether raw, a JSON value, is a number: numbers are
// the only values that start with a digit or a minus sign.
func isJSONNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9')
}

// errTimeRange refuses a token whose exp, nbf or iat is out of range.
var errTimeRange = errors.New("a time claim lies outside years 1970 to 9999")

// Validate refuses times outside 1970 to 9999. The library converts the
// number to an integer without a range check, so an nbf of 1e19 (meant as
// "never") would otherwise come out as an instant long past.
func (c *buyerClaims) Validate() error {
	for _, d := range []*jwt.NumericDate{c.ExpiresAt, c.NotBefore, c.IssuedAt} {
		if d != nil && (d.Unix() < 0 || d.Unix() > maxUnixTime) {
			return errTimeRange
		}
	}
	return nil
}

// ReloadKeys reads the buyer-token keys again from where they came (the
// JWKS file of BuyerAuth.JWKSFile, the URL of BuyerAuth.Remote) and puts
// them in force at once on every listener, forgetting every cached token:
// cmd/surge calls it on SIGHUP. If a source fails, nothing changes and the
// error says why.
func (s *Server) ReloadKeys(ctx context.Context) error {
	return s.auth.get().buyers.reload(ctx)
}

// SetJWTSecret replaces the HS256 secret of buyer tokens (empty: HS256
// tokens are refused) on every listener, forgetting every cached token.
func (s *Server) SetJWTSecret(secret []byte) {
	s.auth.get().buyers.setSecret(secret)
}
