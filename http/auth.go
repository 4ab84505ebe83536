package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
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

// authenticator resolves identities. Admin requests carry the admin token
// as a bearer token; buyers carry an HS256 JWT whose sub is their id, or,
// in development mode only, an X-User-ID header.
type authenticator struct {
	adminHash  [32]byte
	jwtSecret  []byte
	userHeader bool
	parser     *jwt.Parser
}

func newAuthenticator(adminToken string, jwtSecret []byte, userHeader bool) *authenticator {
	return &authenticator{
		adminHash:  sha256.Sum256([]byte(adminToken)),
		jwtSecret:  jwtSecret,
		userHeader: userHeader,
		// The algorithm is pinned: alg=none and algorithm confusion are
		// rejected by the parser, and exp is mandatory.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
	}
}

var (
	errNoIdentity = errors.New("missing credentials: send Authorization: Bearer <token>")
	errBadToken   = errors.New("invalid or expired token")
	errNotAdmin   = errors.New("this endpoint needs the admin token")
	errNoJWT      = errors.New("buyer tokens are not accepted: the server has no JWT secret")
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

func (a *authenticator) verifyJWT(tok string) (string, error) {
	if len(a.jwtSecret) == 0 {
		return "", errNoJWT
	}
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return a.jwtSecret, nil })
	if err != nil {
		return "", errBadToken
	}
	if !surge.ValidID(claims.Subject) {
		return "", errors.New("token subject must be a user id matching [A-Za-z0-9_-]{1,64}")
	}
	return claims.Subject, nil
}
