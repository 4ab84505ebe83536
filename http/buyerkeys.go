package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/surgehq/surge"
)

// buyerKeys verifies buyer tokens: the keys in force, swapped whole when
// they change, and a cache of the tokens they verified.
type buyerKeys struct {
	cur atomic.Pointer[keyState]
	// remote, when set, holds the key set in force (it replaces the
	// JWKS of keyState) and refreshes it by itself.
	remote *RemoteJWKS
	// file is re-read by reload; "" when the set is fixed or remote.
	file   string
	cache  *tokenCache
	checks *tokenChecks
	now    func() time.Time
	// mu serializes reloads (never taken on a request).
	mu sync.Mutex
}

// keyState is one generation of keys: what a reload replaces. A cached
// token is good only under the state (and remote set) that verified it.
type keyState struct {
	hmacKey []byte // empty: HS256 is refused
	// prevHMACKey is the secret a rotation replaced (empty: none);
	// hmacKeys is what verification tries, built once: hmacKey alone,
	// or both in a jwt.VerificationKeySet.
	prevHMACKey []byte
	hmacKeys    any
	jwks        *JWKS // nil: no local key set
	// parser is nil when no algorithm is accepted at all.
	parser           *jwt.Parser
	issuer, audience string
	// algs are the algorithms accepted, for the message of a token
	// whose alg is not one of them.
	algs []string
}

func newBuyerKeys(o authOptions) *buyerKeys {
	b := o.buyer
	k := &buyerKeys{remote: b.Remote, file: b.JWKSFile, cache: newTokenCache(o.cacheSlots), checks: o.checks, now: o.now}
	if k.now == nil {
		k.now = time.Now
	}
	k.cur.Store(k.newState(bytes.Clone(o.jwtSecret), bytes.Clone(o.jwtPreviousSecret), b.JWKS, b.Issuer, b.Audience))
	return k
}

// buyerKeysFor returns the buyer keys of o: o.prevKeys when they verify
// exactly as keys built from o would, else new ones. A reload that leaves
// the keys alone (SIGHUP for a rate limit, an admin token) thus keeps the
// cache of verified tokens: emptied, it made every buyer's next request
// pay a full verification at once, a CPU spike in the middle of a sale.
func buyerKeysFor(o authOptions) *buyerKeys {
	if k := o.prevKeys; k != nil && k.configuredAs(o) {
		return k
	}
	return newBuyerKeys(o)
}

// configuredAs reports whether k's keys in force are those o configures.
// Options with a clock or a cache size of their own (tests) never match.
func (k *buyerKeys) configuredAs(o authOptions) bool {
	b, st := o.buyer, k.cur.Load()
	return o.now == nil && o.cacheSlots == 0 && k.checks == o.checks &&
		k.remote == b.Remote && k.file == b.JWKSFile &&
		bytes.Equal(st.hmacKey, o.jwtSecret) && bytes.Equal(st.prevHMACKey, o.jwtPreviousSecret) && st.issuer == b.Issuer && st.audience == b.Audience &&
		st.jwks.sameKeys(b.JWKS)
}

// newState builds the parser of a key generation. The accepted algorithms
// are HS256 with a secret, plus those of the local key set's keys, or all
// of EdDSA, RS256 and ES256 with a remote set (lookup ties every key to
// its own algorithm).
func (k *buyerKeys) newState(secret, prev []byte, ks *JWKS, iss, aud string) *keyState {
	if len(secret) == 0 {
		prev = nil // a previous secret only overlaps a current one
	}
	st := &keyState{hmacKey: secret, prevHMACKey: prev, jwks: ks, issuer: iss, audience: aud}
	st.hmacKeys = secret
	if len(prev) > 0 {
		st.hmacKeys = jwt.VerificationKeySet{Keys: []jwt.VerificationKey{secret, prev}}
	}
	var algs []string
	if len(secret) > 0 {
		algs = append(algs, algHS256)
	}
	if k.remote != nil {
		algs = append(algs, algEdDSA, algRS256, algES256)
	} else {
		algs = append(algs, ks.algorithms()...)
	}
	if len(algs) == 0 {
		return st // no buyer tokens: verify answers errNoJWT
	}
	st.algs = algs
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(k.now),
	}
	if iss != "" {
		opts = append(opts, jwt.WithIssuer(iss))
	}
	if aud != "" {
		opts = append(opts, jwt.WithAudience(aud))
	}
	st.parser = jwt.NewParser(opts...)
	return st
}

// reload reads the keys again from where they came (the JWKS file, the
// JWKS URL) and makes every cached token unknown. On error nothing
// changes.
func (k *buyerKeys) reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.cur.Load()
	ks := old.jwks
	if k.file != "" {
		var err error
		if ks, err = LoadJWKS(k.file); err != nil {
			return err
		}
	}
	if k.remote != nil {
		if err := k.remote.Refresh(ctx); err != nil {
			return err
		}
	}
	k.cur.Store(k.newState(old.hmacKey, old.prevHMACKey, ks, old.issuer, old.audience))
	return nil
}

// setSecret replaces the HS256 secret (empty refuses HS256 tokens), and
// drops a previous one, and makes every cached token unknown.
func (k *buyerKeys) setSecret(secret []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.cur.Load()
	k.cur.Store(k.newState(bytes.Clone(secret), nil, old.jwks, old.issuer, old.audience))
}

// verify checks a buyer token and returns its
// subject. A token verified before under the same keys is answered from
// the cache, its exp and nbf checked again against the clock; any other
// goes through the full check, and into the cache if it passes.
//
// ctx is the request's: a token whose kid the fetched set lacks waits for
// the set to be fetched again no longer than ctx allows.
func (k *buyerKeys) verify(ctx context.Context, tok string) (string, error) {
	user, full, err := k.verifyCounted(ctx, tok, true)
	if full {
		k.checks.count(err)
	}
	return user, err
}

// check verifies a token as verify does, without counting it among the
// buyers' token checks: the admin routes ask only whether a token that is
// not the admin's is a buyer's good one, for their challenge. Nor does it
// cache the token, which the buyer's own first check would then never
// count.
func (k *buyerKeys) check(ctx context.Context, tok string) (string, error) {
	user, _, err := k.verifyCounted(ctx, tok, false)
	return user, err
}

// verifyCounted is verify; full tells whether the token was checked in
// full (not answered from the cache), which verify counts. keep caches a
// token checked in full and good.
func (k *buyerKeys) verifyCounted(ctx context.Context, tok string, keep bool) (user string, full bool, err error) {
	st := k.cur.Load()
	if st.parser == nil {
		return "", false, errNoJWT
	}
	remote := k.remote.current()
	now := k.now().Unix()
	if user, ok := k.cache.get(tok, st, remote, now); ok {
		return user, false, nil
	}
	user, err = k.checkFull(ctx, tok, st, remote, keep)
	return user, true, err
}

// checkFull verifies a token the cache did not answer, and caches it if
// good and keep.
func (k *buyerKeys) checkFull(ctx context.Context, tok string, st *keyState, remote *JWKS, keep bool) (string, error) {
	if len(tok) > maxTokenLen {
		return "", badToken(fmt.Sprintf("it is longer than %d bytes", maxTokenLen))
	}
	v := verification{ctx: ctx, keys: k, st: st, remote: remote}
	var claims buyerClaims
	if t, err := st.parser.ParseWithClaims(tok, &claims, v.key); err != nil {
		return "", badToken(whyRefused(err, t, &claims, &v))
	}
	if !surge.ValidID(claims.Subject) {
		return "", errors.New("token subject must be a user id matching [A-Za-z0-9_-]{1,64}")
	}
	if keep {
		notBefore, expires := validity(&claims)
		k.cache.put(tok, claims.Subject, notBefore, expires, st, v.remote)
	}
	return claims.Subject, nil
}

// tokenChecks counts the buyer tokens checked in full, that is not
// answered from the cache: seen for the first time, displaced from it, or
// refused. Their rate beside the purchases' tells an operator whether the
// cache holds the buyers who retry. One is shared by every authenticator
// a reload builds, so the counts run on across reloads.
type tokenChecks struct{ accepted, refused atomic.Int64 }

func (c *tokenChecks) count(err error) {
	switch {
	case c == nil:
	case err != nil:
		c.refused.Add(1)
	default:
		c.accepted.Add(1)
	}
}

// TokenChecks are the buyer tokens checked in full since the start, not
// answered from the cache of verified tokens: Accepted (the first sight
// of a token, or one the cache had to let go) and Refused.
type TokenChecks struct{ Accepted, Refused int64 }

// TokenChecks returns the counts so far (surge_buyer_token_checks_total).
func (s *Server) TokenChecks() TokenChecks {
	return TokenChecks{Accepted: s.checks.accepted.Load(), Refused: s.checks.refused.Load()}
}

// validity is the span of Unix seconds in which a token with these
// (already verified) claims is accepted, the clock skew included: from nbf
// (or always) to before exp. The library keeps the dates in whole seconds,
// so comparing seconds decides exactly as it does.
func validity(c *buyerClaims) (notBefore, expires int64) {
	skew := int64(jwtLeeway / time.Second)
	notBefore = minUnixTime
	if c.NotBefore != nil {
		notBefore = c.NotBefore.Unix() - skew
	}
	return notBefore, c.ExpiresAt.Unix() + skew
}

// minUnixTime stands for "no nbf": before every clock reading.
const minUnixTime = -1 << 62

// verification is one token's check: the keys it may use, and the remote
// set that verified it (a refresh for an unknown kid may replace it).
type verification struct {
	ctx    context.Context // the request's: bounds a wait for a fetch
	keys   *buyerKeys
	st     *keyState
	remote *JWKS
	// keyErr is why no key was found for the token (nil: one was, or
	// the parser refused the token before asking).
	keyErr error
}

// key returns the key that must have signed t, and keeps why there is
// none for the token's refusal.
func (v *verification) key(t *jwt.Token) (any, error) {
	key, err := v.lookupKey(t)
	v.keyErr = err
	return key, err
}

// lookupKey returns the key that must have signed t. The algorithm is
// already one of the accepted ones (the parser checks before calling);
// each algorithm has its own key, so no key serves two algorithms.
func (v *verification) lookupKey(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand must be refused.
		return nil, errors.New("critical header parameters are not supported")
	}
	switch alg := t.Method.Alg(); alg {
	case algHS256:
		if len(v.st.hmacKey) == 0 {
			return nil, errors.New("HS256 is not accepted")
		}
		return v.st.hmacKeys, nil
	case algEdDSA, algRS256, algES256:
		kid, hasKid := t.Header["kid"]
		s, ok := kid.(string)
		if hasKid && !ok {
			return nil, errors.New("kid must be a string")
		}
		if v.keys.remote == nil {
			if v.st.jwks.Len() == 0 {
				return nil, fmt.Errorf("%s is not accepted", alg)
			}
			return v.st.jwks.lookup(s, hasKid, alg)
		}
		key, err := v.remote.lookup(s, hasKid, alg)
		if err != nil && hasKid && !v.remote.hasKid(s) {
			// A kid we do not know may be a key the issuer just added:
			// fetch the set again, at a bounded rate.
			if fresh := v.keys.remote.refreshForUnknownKid(v.ctx, v.remote); fresh != nil {
				v.remote = fresh
				return fresh.lookup(s, hasKid, alg)
			}
		}
		return key, err
	default:
		return nil, fmt.Errorf("%s is not accepted", alg)
	}
}

// hasKid reports whether the set holds a key with this kid.
func (ks *JWKS) hasKid(kid string) bool {
	return slices.ContainsFunc(ks.all(), func(k jwk) bool { return k.kid == kid })
}

// badTokenError is a refused buyer token: errBadToken, with why.
type badTokenError struct{ why string }

func badToken(why string) error { return badTokenError{why: why} }

func (e badTokenError) Error() string { return "invalid token: " + e.why }

func (e badTokenError) Is(target error) bool { return target == errBadToken }

// whyRefused says why the parser refused a token, in words of Surge's own:
// nothing the token carries (its alg, kid or claims) is quoted. A claim is
// named only once the signature verified, as the parser checks claims only
// then; a token refused for several claims names them all.
func whyRefused(err error, t *jwt.Token, c *buyerClaims, v *verification) string {
	accepted := "this server accepts " + strings.Join(v.st.algs, ", ")
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "it is malformed (a JWT is three base64url segments without padding: a JSON header, " +
			"a JSON object of claims whose exp, nbf and iat are numbers, a signature)"
	case t == nil || t.Method == nil || !slices.Contains(v.st.algs, t.Method.Alg()):
		return "its alg is not accepted (" + accepted + ")"
	case errors.Is(err, jwt.ErrTokenUnverifiable) && v.keyErr != nil:
		return "it cannot be verified: " + v.keyErr.Error()
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "its signature does not verify"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		var why []string
		if c.ExpiresAt == nil {
			why = append(why, "it has no exp (one is required)")
		}
		if errors.Is(err, jwt.ErrTokenExpired) {
			why = append(why, fmt.Sprintf("it expired (its exp has passed, %s of clock skew allowed)", jwtLeeway))
		}
		if errors.Is(err, jwt.ErrTokenNotValidYet) {
			why = append(why, fmt.Sprintf("it is not valid yet (its nbf is more than %s ahead)", jwtLeeway))
		}
		if v.st.issuer != "" && c.Issuer != v.st.issuer {
			why = append(why, "its iss is not the issuer this server requires (--jwt-issuer)")
		}
		if errors.Is(err, jwt.ErrTokenInvalidAudience) || v.st.audience != "" && len(c.Audience) == 0 {
			why = append(why, "its aud does not name the audience this server requires (--jwt-audience)")
		}
		if errors.Is(err, errTimeRange) {
			why = append(why, errTimeRange.Error())
		}
		if len(why) > 0 {
			return strings.Join(why, "; ")
		}
	}
	return "it could not be verified"
}
