package bench

import (
	"encoding/base64"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// crowd derives each buyer from its index and the seed when it is needed,
// so a crowd of millions costs no memory up front and a seed always gives
// the same buyers.
type crowd struct {
	users       int
	seed        uint64
	prefix      string
	maxQuantity int64
	retryShare  float64
}

// buyer is one member of the crowd.
type buyer struct {
	index    int
	user     string // UserPrefix + "u" + index
	quantity int64  // 1..maxQuantity
	key      string // Idempotency-Key, unique per buyer
	retries  bool   // sends its purchase a second time with the same key
	// first is when the purchase was first sent (zero: not yet).
	first time.Time
}

func (c *crowd) buyer(i int) buyer {
	// One PCG stream per buyer, keyed by (seed, index): buyer i is the same
	// whatever order buyers are drawn in, and cheap to derive (no
	// allocation: the generator lives on the stack).
	p := rand.NewPCG(c.seed, uint64(i))
	q := 1 + int64(p.Uint64()%uint64(c.maxQuantity))
	retry := float64(p.Uint64()>>11)*0x1p-53 < c.retryShare
	tag := p.Uint64()
	// User id and key are written into one buffer and share one string:
	// one allocation per buyer rather than four.
	var buf [128]byte
	b := append(buf[:0], c.prefix...)
	b = append(b, 'u')
	b = strconv.AppendInt(b, int64(i), 10)
	userLen := len(b)
	// The index makes the key unique per buyer; the seeded tag keeps keys
	// of runs with different seeds apart.
	b = append(b, 'k')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, tag, 36)
	ids := string(b)
	return buyer{
		index:    i,
		user:     ids[:userLen],
		quantity: q,
		key:      ids[userLen:],
		retries:  retry,
	}
}

// jwtHeader is the base64url encoding of {"alg":"HS256","typ":"JWT"}.
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// minter makes buyer tokens. It writes the claims by hand instead of going
// through jwt.NewWithClaims, whose reflection-based JSON would cost more
// CPU per request than the rest of the client; the signature is still the
// library's HS256. One minter per worker: it reuses its buffer.
type minter struct {
	secret []byte
	buf    []byte
}

// token returns an HS256 JWT with sub = user and exp = now + 1h. User ids
// are [A-Za-z0-9_-], so they need no JSON escaping.
func (m *minter) token(user string, now time.Time) (string, error) {
	b := append(m.buf[:0], `{"sub":"`...)
	b = append(b, user...)
	b = append(b, `","exp":`...)
	b = strconv.AppendInt(b, now.Add(time.Hour).Unix(), 10)
	b = append(b, '}')
	m.buf = b
	enc := base64.RawURLEncoding
	signing := make([]byte, 0, len(jwtHeader)+1+enc.EncodedLen(len(b)))
	signing = append(signing, jwtHeader...)
	signing = append(signing, '.')
	signing = enc.AppendEncode(signing, b)
	sig, err := jwt.SigningMethodHS256.Sign(string(signing), m.secret)
	if err != nil {
		return "", err
	}
	signing = append(signing, '.')
	return string(enc.AppendEncode(signing, sig)), nil
}
