package http

import (
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// defaultTokenCacheSlots sizes the cache of verified buyer tokens: 2^16
// slots (512 KiB of pointers), each holding at most one entry of 384 bytes
// and, for a token too long to fit in it (RS256), at most maxCachedToken
// and ~100 bytes more, so the cache never holds more than ~100 MiB
// whatever the traffic (24 MiB with HS256, EdDSA or ES256 tokens). 10,000
// buyers retrying at once fill a sixth of it.
const defaultTokenCacheSlots = 1 << 16

// maxCachedToken is the longest token the cache keeps (RS256 tokens are
// 600-800 bytes); longer ones are verified every time.
const maxCachedToken = 1 << 10

// tokenCache remembers buyer tokens that passed verification, so a buyer
// who retries (every buyer of a sold-out drop does) costs a hash and a
// lookup instead of base64 and JSON decoding and a signature check. An
// entry holds the whole token and answers only a request carrying exactly
// it; a keyed 64-bit hash (maphash, a random seed per process) picks the
// slots and screens the entries, so the token itself is compared only
// when the hashes match. (It used to be keyed by the token's SHA-256:
// 40 % of a cached check's CPU, for a guarantee the stored token gives.)
// It is a fixed array of slots, two-way set associative: a token may sit
// in either slot of its pair, and a new one takes the pair's empty or
// stale slot, else displaces one of the two.
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
	seed  maphash.Seed
}

// cachedToken is a verified token: who it names, when it is good, and
// under which keys it was verified. The token and the user are kept in
// the entry itself (text), so that a hit reads one object besides its
// slot: with the token and the user in strings of their own it read the
// entry, the token and (the engine, validating) the user, each a cache
// miss under load (docs/benchmarks.md). A token with its user longer
// than text is kept in long instead. A user handed out keeps its entry
// alive while it is held; what keeps users (the ledger, the cluster's
// key cache) copies them into memory of its own.
type cachedToken struct {
	hash               uint64
	notBefore, expires int64 // Unix seconds, skew included: good while notBefore <= now < expires
	st                 *keyState
	remote             *JWKS
	tokenLen, userLen  uint16
	long               string // the token then the user, when they do not fit in text
	text               [inlineText]byte
}

// inlineText holds HS256, EdDSA and ES256 tokens of a few claims and
// their user (an entry of 384 bytes); RS256 tokens go in long.
const inlineText = 384 - 64

// token and user return the entry's token and user. The strings point
// into the entry, which is never written after it is published.
func (e *cachedToken) token() string {
	if e.long != "" {
		return e.long[:e.tokenLen]
	}
	return unsafe.String(&e.text[0], int(e.tokenLen))
}

func (e *cachedToken) user() string {
	if e.long != "" {
		return e.long[e.tokenLen:]
	}
	return unsafe.String(&e.text[e.tokenLen], int(e.userLen))
}

func newTokenCache(slots int) *tokenCache {
	if slots <= 0 {
		slots = defaultTokenCacheSlots
	}
	n := 2
	for n < slots {
		n <<= 1
	}
	return &tokenCache{slots: make([]atomic.Pointer[cachedToken], n), mask: uint64(n - 1), seed: maphash.MakeSeed()}
}

// hash is the token's hash under the cache's seed.
func (c *tokenCache) hash(tok string) uint64 { return maphash.String(c.seed, tok) }

// pair returns the first slot of h's pair (the second is its neighbour).
func (c *tokenCache) pair(h uint64) uint64 { return h & c.mask &^ 1 }

// get answers the user of a cached token that is good now under st and
// remote.
func (c *tokenCache) get(tok string, st *keyState, remote *JWKS, now int64) (string, bool) {
	h := c.hash(tok)
	i := c.pair(h)
	for _, e := range [2]*cachedToken{c.slots[i].Load(), c.slots[i+1].Load()} {
		if e != nil && e.hash == h && e.token() == tok && e.st == st && e.remote == remote {
			if now < e.notBefore || now >= e.expires {
				return "", false
			}
			return e.user(), true
		}
	}
	return "", false
}

// put caches a token just verified under st and remote.
func (c *tokenCache) put(tok string, user string, notBefore, expires int64, st *keyState, remote *JWKS) {
	if len(tok) > maxCachedToken {
		return
	}
	h := c.hash(tok)
	// The token is copied: the request's header, which it points into,
	// is not kept alive by the cache.
	e := &cachedToken{hash: h, notBefore: notBefore, expires: expires, st: st, remote: remote,
		tokenLen: uint16(len(tok)), userLen: uint16(len(user))}
	// Strictly less: the user's first byte is always within text, even
	// for an empty user (which verification never lets through).
	if len(tok)+len(user) < len(e.text) {
		copy(e.text[copy(e.text[:], tok):], user)
	} else {
		e.long = tok + user
	}
	i := c.pair(h)
	a, b := c.slots[i].Load(), c.slots[i+1].Load()
	switch {
	case a == nil || a.token() == tok || a.st != st || a.remote != remote:
	case b == nil || b.token() == tok || b.st != st || b.remote != remote:
		i++
	default:
		// Both hold live tokens: a bit of the hash beside the pair's picks
		// which goes, so neither slot is favoured.
		i += (h >> 63) & 1
	}
	c.slots[i].Store(e)
}
