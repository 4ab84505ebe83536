package http

import (
	"encoding/binary"
	"sync/atomic"
)

// defaultTokenCacheSlots sizes the cache of verified buyer tokens: 2^16
// slots (512 KiB of pointers), each holding at most one entry of under
// 200 bytes, so the cache never holds more than ~13 MiB whatever the
// traffic. 10,000 buyers retrying at once fill a sixth of it.
const defaultTokenCacheSlots = 1 << 16

// tokenCache remembers buyer tokens that passed verification, keyed by the
// SHA-256 of the whole token, so a buyer who retries (every buyer of a
// sold-out drop does) costs a hash and a lookup instead of base64 and JSON
// decoding and a signature check. It is a fixed array of slots, two-way
// set associative: a token may sit in either slot of its pair, and a new
// one takes the pair's empty or stale slot, else displaces one of the two.
// Reads and writes are single atomic pointer operations: no lock, no
// allocation on a hit, and a flood of distinct valid tokens only evicts.
// Only verified tokens enter; an entry answers only under the keys that
// verified it, and only while the clock is within its nbf and exp.
//
// No library fits: the general caches (ristretto, otter, golang-lru) lock
// or allocate per read, or cannot tie an entry to a key generation.
type tokenCache struct {
	slots []atomic.Pointer[cachedToken]
	mask  uint64
}

// cachedToken is a verified token: who it names, when it is good, and
// under which keys it was verified.
type cachedToken struct {
	sum                [32]byte
	user               string
	notBefore, expires int64 // Unix seconds, skew included: good while notBefore <= now < expires
	st                 *keyState
	remote             *JWKS
}

func newTokenCache(slots int) *tokenCache {
	if slots <= 0 {
		slots = defaultTokenCacheSlots
	}
	n := 2
	for n < slots {
		n <<= 1
	}
	return &tokenCache{slots: make([]atomic.Pointer[cachedToken], n), mask: uint64(n - 1)}
}

// pair returns the first slot of sum's pair (the second is its neighbour).
func (c *tokenCache) pair(sum *[32]byte) uint64 {
	return binary.LittleEndian.Uint64(sum[:8]) & c.mask &^ 1
}

// get answers the user of a cached token that is good now under st and
// remote.
func (c *tokenCache) get(sum *[32]byte, st *keyState, remote *JWKS, now int64) (string, bool) {
	i := c.pair(sum)
	for _, e := range [2]*cachedToken{c.slots[i].Load(), c.slots[i+1].Load()} {
		if e != nil && e.sum == *sum && e.st == st && e.remote == remote {
			if now < e.notBefore || now >= e.expires {
				return "", false
			}
			return e.user, true
		}
	}
	return "", false
}

// put caches a token just verified under st and remote.
func (c *tokenCache) put(sum *[32]byte, user string, notBefore, expires int64, st *keyState, remote *JWKS) {
	e := &cachedToken{sum: *sum, user: user, notBefore: notBefore, expires: expires, st: st, remote: remote}
	i := c.pair(sum)
	a, b := c.slots[i].Load(), c.slots[i+1].Load()
	switch {
	case a == nil || a.sum == *sum || a.st != st || a.remote != remote:
	case b == nil || b.sum == *sum || b.st != st || b.remote != remote:
		i++
	default:
		// Both hold live tokens: the sum's next bit picks which goes, so
		// neither slot is favoured.
		i += uint64(sum[8] & 1)
	}
	c.slots[i].Store(e)
}
