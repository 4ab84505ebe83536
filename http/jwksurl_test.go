package http

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer is a real HTTP key server whose set the test rotates; it
// counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, doc []byte) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

func fetchJWKS(t *testing.T, url string, o RemoteJWKSOptions) *RemoteJWKS {
	t.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	r, err := FetchJWKS(t.Context(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJWKSURLRotation: a token naming a kid the set lacks makes the
// server fetch the set again, at once, so a key the issuer just added
// works; a flood of made-up kids costs the key server no more than one
// fetch per MinRefetch.
func TestJWKSURLRotation(t *testing.T) {
	k1, k2 := newEd25519(t), newP256(t)
	srv := newJWKSServer(t, jwksDoc(t, PublicJWK("k1", k1.Public())))
	remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour})
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	tok1 := kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "k1"}, claims)
	tok2 := kit.sign(jwt.SigningMethodES256, k2, map[string]any{"kid": "k2"}, claims)
	if user, err := a.verifyJWT(tok1); err != nil || user != "alice" {
		t.Fatalf("k1 token: %q, %v", user, err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	// The issuer adds k2 (another key type, too) and signs with it.
	srv.serve(http.StatusOK, jwksDoc(t, PublicJWK("k1", k1.Public()), PublicJWK("k2", &k2.PublicKey)))
	if user, err := a.verifyJWT(tok2); err != nil || user != "alice" {
		t.Fatalf("k2 token after rotation: %q, %v", user, err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the unknown kid, want 2", n)
	}
	// A flood of made-up kids, concurrent: the gate allows no more fetch
	// within MinRefetch (an hour), and every such token is refused.
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				bogus := kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": fmt.Sprintf("bogus-%d-%d", g, i)}, claims)
				if _, err := a.verifyJWT(bogus); err == nil {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 2 || accepted.Load() != 0 {
		t.Fatalf("after 400 unknown kids: %d fetches (want 2), %d accepted (want 0)", n, accepted.Load())
	}
	if _, err := a.verifyJWT(tok1); err != nil {
		t.Fatalf("k1 token after the flood: %v", err)
	}
}

// TestJWKSURLRefetchRate: once MinRefetch has passed, an unknown kid may
// fetch again, once.
func TestJWKSURLRefetchRate(t *testing.T) {
	k1 := newEd25519(t)
	srv := newJWKSServer(t, jwksDoc(t, PublicJWK("k1", k1.Public())))
	remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: 2 * time.Second})
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	bogus := func() {
		_, _ = a.verifyJWT(kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "nope"}, claims))
	}
	for range 20 {
		bogus()
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after a burst of unknown kids, want 2 (start + one)", n)
	}
	time.Sleep(2100 * time.Millisecond)
	for range 20 {
		bogus()
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after MinRefetch and another burst, want 3", n)
	}
}

// TestJWKSURLScheduledRefresh: the set is fetched again on schedule; a key
// the issuer withdrew stops working though its tokens were cached, and a
// fetch that fails keeps the keys in force.
func TestJWKSURLScheduledRefresh(t *testing.T) {
	k1, k2 := newEd25519(t), newEd25519(t)
	srv := newJWKSServer(t, jwksDoc(t, PublicJWK("k1", k1.Public()), PublicJWK("k2", k2.Public())))
	remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: 50 * time.Millisecond, MinRefetch: time.Hour})
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	tok1 := kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "k1"}, claims)
	tok2 := kit.sign(jwt.SigningMethodEdDSA, k2, map[string]any{"kid": "k2"}, claims)
	for _, tok := range []string{tok1, tok1, tok2} { // tok1 now cached
		if _, err := a.verifyJWT(tok); err != nil {
			t.Fatal(err)
		}
	}
	// The key server fails for a while: the keys stay.
	srv.serve(http.StatusInternalServerError, []byte("oops"))
	waitFetches(t, srv, srv.fetches.Load()+3)
	if _, err := a.verifyJWT(tok1); err != nil {
		t.Fatalf("a failing key server dropped the keys: %v", err)
	}
	// A set with private key material is refused whole.
	withPrivate := with(PublicJWK("k2", k2.Public()), "d", base64.RawURLEncoding.EncodeToString(k2.Seed()))
	srv.serve(http.StatusOK, jwksDoc(t, withPrivate))
	waitFetches(t, srv, srv.fetches.Load()+3)
	if _, err := a.verifyJWT(tok1); err != nil {
		t.Fatalf("a set with a private key replaced the keys: %v", err)
	}
	// k1 withdrawn: refused, cached or not, once the schedule fetched.
	srv.serve(http.StatusOK, jwksDoc(t, PublicJWK("k2", k2.Public())))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := a.verifyJWT(tok1); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the withdrawn key k1 still verifies after 10 s of 50 ms refreshes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.verifyJWT(tok2); err != nil {
		t.Fatalf("k2 token: %v", err)
	}
}

func waitFetches(t *testing.T, srv *jwksServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.fetches.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the key server saw %d fetches in 10 s, want %d", srv.fetches.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWKSURLFetch: what a fetched set may hold, and ReloadKeys fetching
// at once.
func TestJWKSURLFetch(t *testing.T) {
	keys := LoadTestKeys(t)
	ec := newP256(t)
	ed := PublicJWK("ed", keys.Ed25519.Public())
	t.Run("refused at start", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			status int
			doc    []byte
			want   string
		}{
			{"status 404", http.StatusNotFound, []byte(`{}`), "404"},
			{"not JSON", http.StatusOK, []byte(`<html>`), "decode"},
			{"no keys", http.StatusOK, []byte(`{"keys":[]}`), "no keys"},
			{"only an encryption key", http.StatusOK, jwksDoc(t, with(ed, "use", "enc")), "no keys"},
			{"a private key", http.StatusOK, jwksDoc(t, with(ed, "d", base64.RawURLEncoding.EncodeToString(keys.Ed25519.Seed()))), "private"},
			{"larger than 1 MiB", http.StatusOK, []byte(`{"keys":[` + strings.Repeat(" ", maxJWKSFile) + `]}`), "larger than"},
		} {
			srv := newJWKSServer(t, c.doc)
			srv.serve(c.status, c.doc)
			_, err := FetchJWKS(context.Background(), srv.URL, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
		if _, err := FetchJWKS(context.Background(), "not a url", RemoteJWKSOptions{}); err == nil {
			t.Error("a malformed URL was accepted")
		}
	})
	t.Run("unusable keys skipped", func(t *testing.T) {
		p384 := p384(t)
		srv := newJWKSServer(t, jwksDoc(t, ed, with(PublicJWK("enc", &keys.RSA.PublicKey), "use", "enc"),
			PublicJWK("p384", &p384.PublicKey), PublicJWK("ec", &ec.PublicKey)))
		remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{})
		if got := remote.current().Len(); got != 2 {
			t.Fatalf("%d keys kept, want 2 (ed, ec)", got)
		}
	})
	t.Run("reload fetches now", func(t *testing.T) {
		srv := newJWKSServer(t, jwksDoc(t, ed))
		remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour})
		s := New(nil, Config{Logger: slog.New(slog.DiscardHandler), BuyerAuth: BuyerAuth{Remote: remote}})
		kit := tokenKit{t: t}
		claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
		edTok := kit.sign(jwt.SigningMethodEdDSA, keys.Ed25519, map[string]any{"kid": "ed"}, claims)
		ecTok := kit.sign(jwt.SigningMethodES256, ec, map[string]any{"kid": "ec"}, claims)
		if _, err := s.auth.verifyJWT(edTok); err != nil {
			t.Fatal(err)
		}
		srv.serve(http.StatusOK, jwksDoc(t, PublicJWK("ec", &ec.PublicKey)))
		if err := s.ReloadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.auth.verifyJWT(edTok); err == nil {
			t.Fatal("after the reload the withdrawn key still verifies")
		}
		if _, err := s.auth.verifyJWT(ecTok); err != nil {
			t.Fatal(err)
		}
		srv.serve(http.StatusBadGateway, nil)
		if err := s.ReloadKeys(context.Background()); err == nil || !strings.Contains(err.Error(), "502") {
			t.Fatalf("reload from a failing key server: %v, want the status in the error", err)
		}
		if _, err := s.auth.verifyJWT(ecTok); err != nil {
			t.Fatalf("a failed reload dropped the keys: %v", err)
		}
	})
}

// TestFetchedSetSkipsWeakLegacyKey: docs/api.md says a fetched key set is
// checked like the file "except that keys Surge cannot use (use enc, other
// curves and types) are skipped", and lists what refuses a fetched set:
// private key material, a body over 1 MiB, no usable key. An identity
// provider that still publishes a legacy 1024-bit RSA key (here marked
// RS512, an algorithm Surge never verifies: a 2048-bit RS512 key is
// skipped) beside its signing keys made Surge refuse the whole set: the
// start fails, and a set that gains such a key is never taken again, so a
// key the issuer added never verifies (and one it withdrew keeps
// verifying).
func TestFetchedSetSkipsWeakLegacyKey(t *testing.T) {
	keys := LoadTestKeys(t)
	legacy, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ed := PublicJWK("ed", keys.Ed25519.Public())
	weak := with(PublicJWK("legacy", &legacy.PublicKey), "alg", "RS512")

	t.Run("at start", func(t *testing.T) {
		srv := newJWKSServer(t, jwksDoc(t, ed, weak))
		r, err := FetchJWKS(context.Background(), srv.URL, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("a set with a usable key and a legacy RSA-1024 RS512 key was refused: %v", err)
		}
		defer r.Close()
		if n := r.current().Len(); n != 1 {
			t.Errorf("%d keys kept, want 1 (ed)", n)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		ec := newP256(t)
		srv := newJWKSServer(t, jwksDoc(t, ed))
		remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Millisecond})
		s := New(nil, Config{Logger: slog.New(slog.DiscardHandler), BuyerAuth: BuyerAuth{Remote: remote}})
		// The issuer adds a new signing key; its set also carries the
		// legacy one.
		srv.serve(200, jwksDoc(t, ed, PublicJWK("ec", &ec.PublicKey), weak))
		kit := tokenKit{t: t}
		claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
		tok := kit.sign(jwt.SigningMethodES256, ec, map[string]any{"kid": "ec"}, claims)
		if _, err := s.auth.verifyJWT(tok); err != nil {
			t.Errorf("a token of the issuer's new key is refused (the set is never taken again): %v", err)
		}
	})
}

// TestFetchedSetRefusesPrivateKeyMaterial: docs/api.md says private key
// material refuses a fetched set, as it refuses a JWKS file: a key server
// that publishes a private key (a mis-export) has handed everyone the
// power to sign tokens for any buyer, and Surge must not go on as if
// nothing happened. jwkset reads a served RSA key as public unless it
// carries d and all five CRT members, and drops the rest of the private
// members before Surge saw them, so an RSA key published with its private
// exponent alone, or with one of its primes (which factors n), was taken.
func TestFetchedSetRefusesPrivateKeyMaterial(t *testing.T) {
	keys := LoadTestKeys(t)
	enc := base64.RawURLEncoding
	ed := PublicJWK("ed", keys.Ed25519.Public())
	rsaKey := PublicJWK("rsa", &keys.RSA.PublicKey)
	d, p := enc.EncodeToString(keys.RSA.D.Bytes()), enc.EncodeToString(keys.RSA.Primes[0].Bytes())
	for _, c := range []struct {
		name string
		key  map[string]any
	}{
		{"Ed25519 private key (d)", with(ed, "d", enc.EncodeToString(keys.Ed25519.Seed()))},
		{"RSA private exponent (d) without the CRT members", with(rsaKey, "d", d)},
		{"RSA prime factor (p)", with(rsaKey, "p", p)},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newJWKSServer(t, jwksDoc(t, c.key))
			if r, err := FetchJWKS(context.Background(), srv.URL, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)}); err == nil {
				r.Close()
				t.Fatalf("a key set publishing a %s started the server: private key material must refuse a fetched set (docs/api.md), anyone holding it signs tokens for any buyer", c.name)
			}
			// The same set served later, on a refresh: refused, the keys
			// in force stay.
			srv.serve(http.StatusOK, jwksDoc(t, ed))
			remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour})
			before := remote.current()
			srv.serve(http.StatusOK, jwksDoc(t, ed, c.key))
			if err := remote.Refresh(context.Background()); err == nil || remote.current() != before {
				t.Fatalf("a refreshed key set publishing a %s was taken (err %v): private key material must refuse a fetched set and keep the keys in force", c.name, err)
			}
		})
	}
}

// TestFetchedSetSkipsKeysOfOtherUses: RFC 7517 lets a key's use and
// key_ops take values beyond the registered ones ("other values MAY be
// used"), and docs/api.md says keys Surge cannot use are skipped in a
// fetched set. jwkset refused the whole set for such a key, so the start
// failed, and once the issuer published one, its set was never taken
// again: its new key never verified, and the key it withdrew kept
// verifying.
func TestFetchedSetSkipsKeysOfOtherUses(t *testing.T) {
	keys := LoadTestKeys(t)
	ed := PublicJWK("ed", keys.Ed25519.Public())
	rsaKey := PublicJWK("other", &keys.RSA.PublicKey)
	for _, c := range []struct {
		name  string
		other map[string]any
	}{
		{"use tls", with(rsaKey, "use", "tls")},
		{"key_ops attest", with(rsaKey, "key_ops", []string{"attest"})},
	} {
		t.Run(c.name+"/at start", func(t *testing.T) {
			srv := newJWKSServer(t, jwksDoc(t, ed, c.other))
			r, err := FetchJWKS(context.Background(), srv.URL, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("a key set with a signing key and a key of %s (not one Surge verifies with) was refused whole: the server cannot start: %v", c.name, err)
			}
			defer r.Close()
			if n := r.current().Len(); n != 1 {
				t.Errorf("%d keys kept, want 1 (ed)", n)
			}
		})
		t.Run(c.name+"/rotation", func(t *testing.T) {
			ec := newP256(t)
			srv := newJWKSServer(t, jwksDoc(t, ed))
			remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Millisecond})
			s := New(nil, Config{Logger: slog.New(slog.DiscardHandler), BuyerAuth: BuyerAuth{Remote: remote}})
			kit := tokenKit{t: t}
			claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
			old := kit.sign(jwt.SigningMethodEdDSA, keys.Ed25519, map[string]any{"kid": "ed"}, claims)
			if _, err := s.auth.verifyJWT(old); err != nil {
				t.Fatal(err)
			}
			// The issuer withdraws ed, signs with a new key, and publishes
			// a key of another use beside it.
			srv.serve(http.StatusOK, jwksDoc(t, PublicJWK("ec", &ec.PublicKey), c.other))
			tok := kit.sign(jwt.SigningMethodES256, ec, map[string]any{"kid": "ec"}, claims)
			if _, err := s.auth.verifyJWT(tok); err != nil {
				t.Errorf("a token of the issuer's new key is refused (its set, holding a key of %s, is never taken): %v", c.name, err)
			}
			if _, err := s.auth.verifyJWT(old); err == nil {
				t.Errorf("a token of the key the issuer withdrew is still accepted (its set, holding a key of %s, is never taken)", c.name)
			}
		})
	}
}

// TestFetchedSetMembersAreExact: a fetched set is checked like a JWKS
// file, whose member names are exact and where a member named twice
// refuses the key (TestJWKSMembersAreExact). jwkset reads names in any
// case and keeps the last of two, so a key the set marks for encryption
// ({"use":"enc","Use":"sig"}, or "use" given twice) verified tokens.
func TestFetchedSetMembersAreExact(t *testing.T) {
	keys := LoadTestKeys(t)
	x := base64.RawURLEncoding.EncodeToString(keys.Ed25519.Public().(ed25519.PublicKey))
	ec := newP256(t)
	for _, c := range []struct{ name, members string }{
		{"use enc then Use sig", `"use":"enc","Use":"sig"`},
		{"use enc then use sig", `"use":"enc","use":"sig"`},
		{"key_ops encrypt then KEY_OPS verify", `"key_ops":["encrypt"],"KEY_OPS":["verify"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ecKey, err := json.Marshal(PublicJWK("ec", &ec.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			doc := `{"keys":[` + string(ecKey) + `,{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"` + x + `",` + c.members + `}]}`
			srv := newJWKSServer(t, []byte(doc))
			r, err := FetchJWKS(context.Background(), srv.URL, RemoteJWKSOptions{Logger: slog.New(slog.DiscardHandler), MinRefetch: time.Hour})
			if err != nil {
				return // refused whole: as a file would be
			}
			defer r.Close()
			a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: r}})
			tok := tokenKit{t: t}.sign(jwt.SigningMethodEdDSA, keys.Ed25519, map[string]any{"kid": "ed"},
				jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
			if user, err := a.verifyJWT(tok); err == nil {
				t.Fatalf("a token signed by a key the fetched set marks %s was accepted as %q: a key whose use forbids signing verified a buyer token", c.members, user)
			}
		})
	}
}

// TestJWKSURLOlderFetchDoesNotRevert: a reload fetches the set at once,
// so a key the issuer withdrew stops verifying; a scheduled fetch that
// began before (a slow key server) and answers after must not put the
// older set, and the withdrawn key, back in force.
func TestJWKSURLOlderFetchDoesNotRevert(t *testing.T) {
	k1, k2 := newEd25519(t), newEd25519(t)
	var (
		mu        sync.Mutex
		doc       = jwksDoc(t, PublicJWK("k1", k1.Public()))
		n         atomic.Int64
		after     atomic.Bool // fetches from now on wait for the end
		slow      = make(chan struct{})
		release   = make(chan struct{})
		nextCame  = make(chan struct{})
		nextOnce  sync.Once
		testEnded = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		mu.Lock()
		d := doc
		mu.Unlock()
		switch {
		case i == 2: // the first scheduled fetch: answers the set of its time, late
			close(slow)
			<-release
		case after.Load(): // the schedule came round again: the slow fetch is done
			nextOnce.Do(func() { close(nextCame) })
			select {
			case <-testEnded:
			case <-r.Context().Done():
			}
		}
		_, _ = w.Write(d)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(testEnded) })
	remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: 100 * time.Millisecond, MinRefetch: time.Hour})
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	tok1 := tokenKit{t: t}.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "k1"}, claims)
	<-slow
	// The issuer withdraws k1; the operator reloads.
	mu.Lock()
	doc = jwksDoc(t, PublicJWK("k2", k2.Public()))
	mu.Unlock()
	if err := remote.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.verifyJWT(tok1); err == nil {
		t.Fatal("k1 verifies after the reload that withdrew it")
	}
	after.Store(true)
	close(release)
	<-nextCame
	if _, err := a.verifyJWT(tok1); err == nil {
		t.Fatal("the key the issuer withdrew verifies again after the reload that withdrew it: a scheduled fetch begun before the reload answered later and put the older key set back in force")
	}
}
