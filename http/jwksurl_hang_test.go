package http

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSURLUnknownKidHangingKeyServer: while the key server hangs, a
// token naming a kid the set lacks waits for the fetch it causes no longer
// than its request's context allows; concurrent unknown kids share one
// fetch; a token with a known kid does not wait at all.
func TestJWKSURLUnknownKidHangingKeyServer(t *testing.T) {
	k1 := newEd25519(t)
	doc := jwksDoc(t, PublicJWK("k1", k1.Public()))
	var hang atomic.Bool
	var fetches atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close return
	const fetchTimeout = 8 * time.Second
	remote := fetchJWKS(t, srv.URL, RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour, Timeout: fetchTimeout})
	a := newAuthenticatorOptions(authOptions{buyer: BuyerAuth{Remote: remote}})
	kit := tokenKit{t: t}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	known := kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": "k1"}, claims)
	hang.Store(true)

	const reqDeadline, want = 300 * time.Millisecond, 3 * time.Second
	ask := func(tok string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(t.Context(), reqDeadline)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/orders/none", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		_, err := a.identify(req)
		return time.Since(start), err
	}
	const n = 16
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	errs := make([]error, n)
	for i := range n {
		tok := kit.sign(jwt.SigningMethodEdDSA, k1, map[string]any{"kid": fmt.Sprintf("rotated-%d", i)}, claims)
		wg.Go(func() { took[i], errs[i] = ask(tok) })
	}
	// Poll until the fetch for the unknown kids has reached the key server.
	for deadline := time.Now().Add(10 * time.Second); fetches.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if d, err := ask(known); err != nil || d > want {
		t.Errorf("a token with a known kid, while the key server hangs: answered after %v (err %v); want it accepted within %v, without waiting for the fetch", d.Round(time.Millisecond), err, want)
	}
	wg.Wait()
	for i := range n {
		if took[i] > want {
			t.Errorf("a token with an unknown kid, its request's context ending after %v, while the key server hangs: answered after %v; want an answer within %v", reqDeadline, took[i].Round(time.Millisecond), want)
		}
		if errs[i] == nil {
			t.Errorf("a token with an unknown kid was accepted")
		}
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("the key server saw %d fetches (the start's and those for %d concurrent unknown kids); want 2: the unknown kids share one fetch", got, n)
	}
}
