package rpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	surgehttp "github.com/surgehq/surge/http"
)

// TestUnknownKidWaitsNoLongerThanTheCall: over gRPC/Connect, as over HTTP,
// a buyer token naming a kid the fetched key set lacks waits for the fetch
// it causes no longer than the call's own deadline. The call's context
// did not reach the key check (Server.Authenticate took headers alone), so
// while the key server hung every such call waited for the whole fetch
// timeout, past its deadline.
// hungKidServer is a server whose buyer tokens come from a key server
// that hangs, and a token (signed) naming a kid the fetched set lacks: a
// call with it waits for a fetch that never ends.
// fetchTimeout bounds hungKidServer's fetch of the key set.
const fetchTimeout = 8 * time.Second

func hungKidServer(t *testing.T) (base, signed string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub))
	var hang atomic.Bool
	release := make(chan struct{})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, doc)
	}))
	t.Cleanup(keys.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close return
	remote, err := surgehttp.FetchJWKS(t.Context(), keys.URL, surgehttp.RemoteJWKSOptions{Refresh: time.Hour, MinRefetch: time.Hour, Timeout: fetchTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remote.Close)
	base = serverOver(t, nil, func(c *surgehttp.Config) {
		c.InsecureUserHeader = false
		c.BuyerAuth = surgehttp.BuyerAuth{Remote: remote}
	})
	createSale(t, base, "kid", 10)
	hang.Store(true)

	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "rotated"
	signed, err = tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return base, signed
}

func TestUnknownKidWaitsNoLongerThanTheCall(t *testing.T) {
	base, signed := hungKidServer(t)
	const deadlineMs, want = 300, 3 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 2*fetchTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/surge.v1.SaleService/Purchase", strings.NewReader(`{"sale_id":"kid"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Timeout-Ms", fmt.Sprint(deadlineMs))
	req.Header.Set("Authorization", "Bearer "+signed)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took > want {
		t.Errorf("a Connect purchase with a token of unknown kid and a %d ms deadline, while the key server hangs: answered %d %s after %v; want an answer within %v (the call's deadline bounds the wait for the key set)", deadlineMs, resp.StatusCode, b, took.Round(time.Millisecond), want)
	}
	if resp.StatusCode == http.StatusOK {
		t.Errorf("a token of unknown kid was accepted: %s", b)
	}
}

// TestUnknownKidPastDeadlineAnswersDeadlineExceeded: a call whose deadline
// passed while its token's key set was being fetched (a token of a new
// kid, the key server slow) answered UNAUTHENTICATED (401 over Connect),
// as if the token were bad: a client, or a proxy passing the server's
// answer on, signed the buyer out or fetched a new token instead of
// retrying. docs/api.md#grpc: a call past its deadline is
// DEADLINE_EXCEEDED.
func TestUnknownKidPastDeadlineAnswersDeadlineExceeded(t *testing.T) {
	base, signed := hungKidServer(t)
	purchasesPastDeadline(t, base, "kid", func(r *http.Request, _ int) {
		r.Header.Set("Authorization", "Bearer "+signed)
	}, "its token's key set was fetched")
}
