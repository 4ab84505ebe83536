package bench

import (
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	idRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	keyRE = regexp.MustCompile(`^[\x20-\x7e]{1,128}$`)
)

func testCrowd(seed uint64) *crowd {
	return &crowd{users: 1_000_000, seed: seed, prefix: "run7-", maxQuantity: 3, retryShare: 0.3}
}

func TestCrowdDeterministic(t *testing.T) {
	a, b, other := testCrowd(42), testCrowd(42), testCrowd(43)
	sameQuantities := true
	for _, i := range []int{0, 1, 2, 999, 123_456, 999_999} {
		if x, y := a.buyer(i), b.buyer(i); x != y {
			t.Errorf("buyer %d differs between two crowds of one seed: %+v vs %+v", i, x, y)
		}
	}
	for i := range 100 {
		x, z := a.buyer(i), other.buyer(i)
		if x.user != z.user {
			t.Errorf("buyer %d: user ids %q and %q depend on the seed", i, x.user, z.user)
		}
		if x.key == z.key {
			t.Errorf("buyer %d has key %q under two seeds", i, x.key)
		}
		sameQuantities = sameQuantities && x.quantity == z.quantity
	}
	if sameQuantities {
		t.Error("seeds 42 and 43 give the same 100 quantities")
	}
}

func TestCrowdBuyers(t *testing.T) {
	c := testCrowd(1)
	const n = 20_000
	keys := make(map[string]bool, n)
	users := make(map[string]bool, n)
	var quantities [4]int
	retries := 0
	for i := range n {
		b := c.buyer(i)
		if b.index != i || !idRE.MatchString(b.user) || !keyRE.MatchString(b.key) {
			t.Fatalf("buyer %d: %+v has an invalid index, user id or key", i, b)
		}
		if b.quantity < 1 || b.quantity > c.maxQuantity {
			t.Fatalf("buyer %d: quantity %d outside 1..%d", i, b.quantity, c.maxQuantity)
		}
		if keys[b.key] || users[b.user] {
			t.Fatalf("buyer %d repeats a key or user id: %+v", i, b)
		}
		keys[b.key], users[b.user] = true, true
		quantities[b.quantity]++
		if b.retries {
			retries++
		}
	}
	if got := c.buyer(42).user; got != "run7-u42" {
		t.Errorf("user id of buyer 42 = %q, want run7-u42", got)
	}
	if b := c.buyer(999_999); !idRE.MatchString(b.user) {
		t.Errorf("user id %q of the millionth buyer is invalid", b.user)
	}
	for q := 1; q <= 3; q++ {
		if quantities[q] < n/3-600 || quantities[q] > n/3+600 {
			t.Errorf("%d buyers ask for %d units, want about %d", quantities[q], q, n/3)
		}
	}
	if share := float64(retries) / n; share < 0.28 || share > 0.32 {
		t.Errorf("retry share %.3f, want 0.3 ± 0.02", share)
	}
	none, all := *c, *c
	none.retryShare, all.retryShare = 0, 1
	for i := range 1000 {
		if none.buyer(i).retries || !all.buyer(i).retries {
			t.Fatalf("buyer %d: retry share 0 or 1 not honoured", i)
		}
	}
}

// A crowd of a million costs nothing up front: a buyer is derived on
// demand with only its strings allocated.
func TestCrowdBuyerAllocations(t *testing.T) {
	c := testCrowd(1)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		_ = c.buyer(i)
		i++
	})
	if allocs > 4 {
		t.Errorf("buyer allocates %.1f times, want at most 4 (its strings)", allocs)
	}
}

func TestMinterToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	m := minter{secret: secret}
	now := time.Now()
	for _, user := range []string{"run7-u0", "run7-u999999", "A_b-9"} {
		tok, err := m.token(user, now)
		if err != nil {
			t.Fatalf("token(%q): %v", user, err)
		}
		var claims jwt.RegisteredClaims
		parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if _, err := parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return secret, nil }); err != nil {
			t.Fatalf("token for %q does not verify: %v (%s)", user, err, tok)
		}
		if claims.Subject != user {
			t.Errorf("sub = %q, want %q", claims.Subject, user)
		}
		if exp := claims.ExpiresAt.Time; exp.Unix() != now.Add(time.Hour).Unix() {
			t.Errorf("exp = %v, want now + 1h = %v", exp, now.Add(time.Hour))
		}
		if _, err := parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte("another secret"), nil }); err == nil {
			t.Errorf("token for %q verifies with another secret", user)
		}
	}
}
