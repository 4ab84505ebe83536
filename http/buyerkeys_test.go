package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	stdhttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// fakeClock is a settable clock for token validity.
type fakeClock struct{ unix atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.unix.Store(time.Now().Unix())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *fakeClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestES256Tokens: P-256 keys of a JWKS verify ES256 tokens, and only
// those; every check of the other algorithms holds for them too.
func TestES256Tokens(t *testing.T) {
	keys := LoadTestKeys(t)
	ec, other := newP256(t), newP256(t)
	k := tokenKit{t: t, keys: keys}
	set, err := ParseJWKS(jwksDoc(t, PublicJWK("ed", keys.Ed25519.Public()), PublicJWK("ec", &ec.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	single, err := ParseJWKS(jwksDoc(t, PublicJWK("", &ec.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuthenticatorOptions(authOptions{jwtSecret: secret, buyer: BuyerAuth{JWKS: set}})
	one := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{JWKS: single}})
	now := time.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	kid := func(id string) map[string]any { return map[string]any{"kid": id} }
	es := func(key *ecdsa.PrivateKey, h map[string]any, c jwt.MapClaims) string {
		return k.sign(jwt.SigningMethodES256, key, h, c)
	}
	good := es(ec, kid("ec"), claims())
	pub, err := ec.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		a     *authenticator
		token string
		ok    bool
	}{
		{"ES256 by kid", a, good, true},
		{"ES256 without kid, one-key set", one, es(ec, nil, claims()), true},
		{"ES256 without kid, two-key set", a, es(ec, nil, claims()), false},
		{"ES256 by a key outside the set", a, es(other, kid("ec"), claims()), false},
		{"ES256 with the Ed25519 key's kid", a, es(ec, kid("ed"), claims()), false},
		{"EdDSA with the P-256 key's kid", a, k.sign(jwt.SigningMethodEdDSA, keys.Ed25519, kid("ec"), claims()), false},
		{"ES384 under the P-256 key's kid", a, k.sign(jwt.SigningMethodES384, p384(t), kid("ec"), claims()), false},
		{"HS256 signed with the P-256 public key", a, hmacToken(`{"alg":"HS256","kid":"ec"}`, `{"sub":"alice","exp":4102444800}`, pub), false},
		{"ES256 with a DER signature", a, derSignature(t, ec, `{"alg":"ES256","kid":"ec"}`, `{"sub":"alice","exp":4102444800}`), false},
		{"ES256 expired", a, es(ec, kid("ec"), claims("exp", now.Add(-time.Minute).Unix())), false},
		{"ES256 not valid yet", a, es(ec, kid("ec"), claims("nbf", now.Add(time.Minute).Unix())), false},
		{"ES256 alg none", a, k.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("ec"), claims()), false},
		{"ES256 with a crit header", a, es(ec, map[string]any{"kid": "ec", "crit": []string{"exp"}}, claims()), false},
		{"ES256 sub invalid", a, es(ec, kid("ec"), claims("sub", "../admin")), false},
		{"payload swapped under a valid signature", a, swapPayload(good, es(ec, kid("ec"), claims("sub", "mallory"))), false},
	} {
		user, err := c.a.verifyJWT(c.token)
		if c.ok != (err == nil) || c.ok && user != "alice" {
			t.Errorf("%s: %q, %v; want accepted %v", c.name, user, err, c.ok)
		}
	}
}

func p384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// derSignature signs with ECDSA but encodes the signature in ASN.1 DER,
// as X.509 does, instead of JWS's fixed 64 bytes of r and s.
func derSignature(t *testing.T, key *ecdsa.PrivateKey, header, claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	h := sha256.Sum256([]byte(in))
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc.EncodeToString(sig)
}

// swapPayload puts the payload of b under the header and signature of a.
func swapPayload(a, b string) string {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return pa[0] + "." + pb[1] + "." + pa[2]
}

// TestTokenCacheKeepsChecks: a cached token is answered only while its
// exp and nbf allow, against the clock of each request.
func TestTokenCacheKeepsChecks(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	clk := newFakeClock()
	a := newAuthenticatorOptions(authOptions{jwtSecret: secret, now: clk.now})
	k := tokenKit{t: t, secret: secret}
	t0 := clk.now()
	tok := k.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{
		"sub": "alice", "nbf": t0.Add(20 * time.Second).Unix(), "exp": t0.Add(time.Minute).Unix()})
	// nbf 20 s ahead is within the 30 s skew: accepted, and cached.
	for range 2 {
		if user, err := a.verifyJWT(tok); err != nil || user != "alice" {
			t.Fatalf("fresh token: %q, %v", user, err)
		}
	}
	if _, ok := a.buyers.cache.get(tok, a.buyers.cur.Load(), nil, t0.Unix()); !ok {
		t.Fatal("the verified token is not in the cache")
	}
	// Exp plus the skew is t0+90 s: good at t0+89, refused from t0+90.
	clk.advance(89 * time.Second)
	if _, err := a.verifyJWT(tok); err != nil {
		t.Fatalf("at exp+29s: %v", err)
	}
	clk.advance(time.Second)
	if user, err := a.verifyJWT(tok); err == nil {
		t.Fatalf("at exp+30s the cached token still names %q", user)
	}
	// And back before nbf - skew (a clock that stepped back).
	clk.unix.Store(t0.Unix() - 11)
	if _, err := a.verifyJWT(tok); err == nil {
		t.Fatal("before nbf-30s the cached token is accepted")
	}
	clk.unix.Store(t0.Unix() - 10)
	if _, err := a.verifyJWT(tok); err != nil {
		t.Fatalf("at nbf-30s: %v", err)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuthenticatorOptions(authOptions{jwtSecret: secret, cacheSlots: 64})
	k := tokenKit{t: t, secret: secret}
	exp := time.Now().Add(time.Hour).Unix()
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = k.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{"sub": fmt.Sprintf("buyer-%d", i), "exp": exp})
		if user, err := a.verifyJWT(tokens[i]); err != nil || user != fmt.Sprintf("buyer-%d", i) {
			t.Fatalf("token %d: %q, %v", i, user, err)
		}
	}
	c := a.buyers.cache
	held := 0
	for i := range c.slots {
		if c.slots[i].entry.Load() != nil {
			held++
		}
	}
	if len(c.slots) != 64 || held > 64 {
		t.Fatalf("%d slots holding %d tokens after 1000 distinct ones; want 64 slots", len(c.slots), held)
	}
	// Evicted or not, every token still verifies, as its own buyer.
	for i, tok := range tokens {
		if user, err := a.verifyJWT(tok); err != nil || user != fmt.Sprintf("buyer-%d", i) {
			t.Fatalf("token %d again: %q, %v", i, user, err)
		}
	}
}

// TestTokenCacheLongTokens: a token longer than maxCachedToken is verified
// every time and never kept (the cache's memory bound), and a cached
// token answers only itself: the same buyer's token with a byte more is
// checked in full.
func TestTokenCacheLongTokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuthenticatorOptions(authOptions{jwtSecret: secret})
	k := tokenKit{t: t, secret: secret}
	exp := time.Now().Add(time.Hour).Unix()
	long := k.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{"sub": "bob", "exp": exp, "pad": strings.Repeat("x", maxCachedToken)})
	short := k.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{"sub": "bob", "exp": exp})
	// Too long for an entry's own room, short enough to be kept.
	medium := k.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{"sub": "bob", "exp": exp, "pad": strings.Repeat("x", inlineText)})
	for _, tok := range []string{long, long, short, medium, medium} {
		if user, err := a.verifyJWT(tok); err != nil || user != "bob" {
			t.Fatalf("token of %d bytes: %q, %v", len(tok), user, err)
		}
	}
	st, now := a.buyers.cur.Load(), time.Now().Unix()
	if _, ok := a.buyers.cache.get(long, st, nil, now); ok {
		t.Errorf("a token of %d bytes is cached", len(long))
	}
	for _, tok := range []string{short, medium} {
		if user, ok := a.buyers.cache.get(tok, st, nil, now); !ok || user != "bob" {
			t.Errorf("a token of %d bytes: cached %v, user %q", len(tok), ok, user)
		}
	}
	for _, other := range []string{short + "A", short[:len(short)-1], short[1:], medium + "A", medium[:len(medium)-1]} {
		if _, ok := a.buyers.cache.get(other, st, nil, now); ok {
			t.Errorf("the cache answers %q for the cached token %q", other, short)
		}
		if _, err := a.verifyJWT(other); err == nil {
			t.Errorf("%q accepted", other)
		}
	}
}

// TestTokenCacheEntrySize: an entry is 384 bytes, one of the allocator's
// size classes, as the cache's memory bound (defaultTokenCacheSlots)
// counts it.
func TestTokenCacheEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(cachedToken{}); n != 384 {
		t.Fatalf("an entry is %d bytes, want 384", n)
	}
}

// TestTokenCacheKeepsRetryingBuyers: the buyers of a sold-out drop retry
// in turn, and a cache with room for all of them must keep nearly all:
// each token it drops costs its next request a full verification. With
// two ways, 10,000 tokens in the default 2^16 slots lost ~250 of them
// every round (three or more sharing a pair); with four, a handful.
func TestTokenCacheKeepsRetryingBuyers(t *testing.T) {
	c := newTokenCache(0)
	st := &keyState{}
	tokens := make([]string, 10000)
	for i := range tokens {
		b := make([]byte, 100)
		_, _ = rand.Read(b)
		tokens[i] = base64.RawURLEncoding.EncodeToString(b) // the length of an HS256 token of a few claims
	}
	const now = 1000
	misses := 0
	for round := range 3 {
		misses = 0
		for _, tok := range tokens {
			if _, ok := c.get(tok, st, nil, now); !ok {
				misses++
				c.put(tok, "buyer", now-1, now+3600, st, nil)
			}
		}
		if round == 0 && misses != len(tokens) {
			t.Fatalf("first round: %d misses, want every token's (%d)", misses, len(tokens))
		}
	}
	if misses > len(tokens)/200 {
		t.Fatalf("%d of %d retrying buyers' tokens were not cached in the third round; want at most 0.5 %%", misses, len(tokens))
	}
	t.Logf("%d misses in the third round", misses)
}

// TestTokenCacheHitAllocs: a buyer whose token is cached is identified
// without allocating.
func TestTokenCacheHitAllocs(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newAuthenticatorOptions(authOptions{adminToken: "admin-token-0123456789", jwtSecret: secret})
	tok := tokenKit{t: t}.sign(jwt.SigningMethodHS256, secret, nil, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	r := httptest.NewRequest("POST", "/v1/sales/s/purchases", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if user, err := a.buyer(r); err != nil || user != "alice" {
		t.Fatalf("buyer: %q, %v", user, err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = a.buyer(r) }); n != 0 {
		t.Fatalf("a cached token costs %.1f allocations, want 0", n)
	}
}

// TestReloadKeysFile: ReloadKeys reads the JWKS file again; tokens of a
// removed key are refused at once, cached or not, and a file that does not
// parse leaves the keys in force.
func TestReloadKeysFile(t *testing.T) {
	keys := LoadTestKeys(t)
	ec := newP256(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(doc []byte) {
		t.Helper()
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksDoc(t, PublicJWK("ed", keys.Ed25519.Public())))
	set, err := LoadJWKS(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil, Config{Logger: slog.New(slog.DiscardHandler), BuyerAuth: BuyerAuth{JWKS: set, JWKSFile: path}})
	pub := s.Public().(*Server) // the public listener shares the keys
	k := tokenKit{t: t, keys: keys}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	edTok := k.sign(jwt.SigningMethodEdDSA, keys.Ed25519, map[string]any{"kid": "ed"}, claims)
	ecTok := k.sign(jwt.SigningMethodES256, ec, map[string]any{"kid": "ec"}, claims)
	accepts := func(srv *Server, tok string) bool { _, err := srv.auth.verifyJWT(tok); return err == nil }
	if !accepts(s, edTok) || !accepts(pub, edTok) || accepts(s, ecTok) {
		t.Fatal("before the reload: want the Ed25519 token only")
	}
	write(jwksDoc(t, PublicJWK("ec", &ec.PublicKey)))
	if !accepts(s, edTok) {
		t.Fatal("the file changed, but nothing reloaded it yet: the keys in force stay")
	}
	if err := s.ReloadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if accepts(s, edTok) || accepts(pub, edTok) || !accepts(s, ecTok) || !accepts(pub, ecTok) {
		t.Fatal("after the reload: want the ES256 token only, on both listeners")
	}
	write([]byte(`{"keys":[`))
	if err := s.ReloadKeys(context.Background()); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if !accepts(s, ecTok) {
		t.Fatal("a failed reload dropped the keys in force")
	}
}

func TestSetJWTSecret(t *testing.T) {
	old, next := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	s := serverWithAuth(authOptions{jwtSecret: old})
	k := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	oldTok, nextTok := k.sign(jwt.SigningMethodHS256, old, nil, claims), k.sign(jwt.SigningMethodHS256, next, nil, claims)
	if _, err := s.auth.verifyJWT(oldTok); err != nil {
		t.Fatal(err)
	}
	s.SetJWTSecret(next)
	if _, err := s.auth.verifyJWT(oldTok); err == nil {
		t.Fatal("a token of the old secret is still accepted (from the cache)")
	}
	if _, err := s.auth.verifyJWT(nextTok); err != nil {
		t.Fatal(err)
	}
	s.SetJWTSecret(nil)
	if _, err := s.auth.verifyJWT(nextTok); err != errNoJWT {
		t.Fatalf("no secret: %v, want errNoJWT", err)
	}
}

// TestTokenCacheConcurrentReload runs buyers against key swaps under the
// race detector: every answer is right for one of the key generations.
func TestTokenCacheConcurrentReload(t *testing.T) {
	a, b := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	s := serverWithAuth(authOptions{jwtSecret: a, cacheSlots: 16})
	k := tokenKit{t: t}
	exp := time.Now().Add(time.Hour).Unix()
	var tokA, tokB []string
	for i := range 40 {
		c := jwt.MapClaims{"sub": fmt.Sprintf("buyer-%d", i), "exp": exp}
		tokA = append(tokA, k.sign(jwt.SigningMethodHS256, a, nil, c))
		tokB = append(tokB, k.sign(jwt.SigningMethodHS256, b, nil, c))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (n + g) % len(tokA)
				for _, tok := range []string{tokA[i], tokB[i]} {
					if user, err := s.auth.verifyJWT(tok); err == nil && user != fmt.Sprintf("buyer-%d", i) {
						wrong.Add(1)
					}
				}
			}
		})
	}
	for i := range 200 {
		if i%2 == 0 {
			s.SetJWTSecret(b)
		} else {
			s.SetJWTSecret(a)
		}
	}
	s.SetJWTSecret(b)
	close(stop)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d answers named the wrong buyer", wrong.Load())
	}
	for i := range tokA {
		if _, err := s.auth.verifyJWT(tokA[i]); err == nil {
			t.Fatalf("after the last swap to secret B, token A %d is accepted", i)
		}
		if _, err := s.auth.verifyJWT(tokB[i]); err != nil {
			t.Fatalf("token B %d: %v", i, err)
		}
	}
}

// BenchmarkBuyerToken is the cost of identifying a buyer by an HS256
// token: cold (every token new: decode, claims, signature) and cached (the
// buyer retries).
func BenchmarkBuyerToken(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	exp := time.Now().Add(time.Hour)
	reqs := make([]*stdhttp.Request, 10000)
	for i := range reqs {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": fmt.Sprintf("buyer-%d", i), "iat": time.Now().Unix(), "exp": exp.Unix()}).SignedString(secret)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = httptest.NewRequest("POST", "/v1/sales/s/purchases", nil)
		reqs[i].Header.Set("Authorization", "Bearer "+tok)
	}
	for _, c := range []struct {
		name   string
		slots  int
		tokens int
	}{
		{"cold", 2, 4096}, // 4096 tokens through the fewest slots (one group): every lookup misses
		{"cached", 0, 4096},
		// bench/jwt.lua's buyers: 10,000 retrying in turn, where a cache
		// with too few ways keeps displacing some of them.
		{"retrying", 0, 10000},
	} {
		b.Run(c.name, func(b *testing.B) {
			a := newAuthenticatorOptions(authOptions{adminToken: "admin-token-0123456789", jwtSecret: secret, cacheSlots: c.slots})
			for _, r := range reqs[:c.tokens] {
				if _, err := a.buyer(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := a.buyer(reqs[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == c.tokens {
					i = 0
				}
			}
		})
	}
}
