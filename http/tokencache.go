package http

import (
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// defaultTokenCacheSlots sizes the cache of verified buyer tokens: 2^16
// slots (1 MiB of hashes and pointers), each holding at most one entry of
// 384 bytes and, for a token too long to fit in it (RS256), at most
// maxCachedToken and ~100 bytes more, so the cache never holds more than
// ~100 MiB whatever the traffic (25 MiB with HS256, EdDSA or ES256
// tokens). 10,000 buyers retrying at once fill a sixth of it.
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
// It is a fixed array of slots, four-way set associative: a token may sit
// in any slot of its group of four, and a new one takes the group's empty
// or stale slot, else displaces one of the four. A slot holds the entry's
// hash beside its pointer, so a lookup reads its group's one cache line
// and then only the entry whose hash matches. Two ways were too few:
// 10,000 buyers retrying in turn found ~2.5 % of their tokens displaced
// by a third one of the same pair each round, and paid a full
// verification for each (TestTokenCacheKeepsRetryingBuyers).
// Reads and writes are atomic loads and stores of the slots: no lock, no
// allocation on a hit, and a flood of distinct valid tokens only evicts.
// Only verified tokens enter; an entry answers only under the keys that
// verified it, and only while the clock is within its nbf and exp.
//
// No library fits: the general caches (ristretto, otter, golang-lru) lock
// or allocate per read, or cannot tie an entry to a key generation.
type tokenCache struct {
	slots []tokenSlot
	mask  uint64
	seed  maphash.Seed
}

// tokenSlot is a slot: an entry and its hash, 16 bytes, so a group of
// ways slots is one 64-byte cache line (an array of the default size is
// page-aligned). The hash only screens: the two words are stored one
// after the other, and a reader that finds them out of step finds an
// entry whose token is not its own, which is a miss.
type tokenSlot struct {
	hash  atomic.Uint64
	entry atomic.Pointer[cachedToken]
}

// ways is the slots a token may sit in: a group of them.
const ways = 4

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
	notBefore, expires int64 // Unix seconds, skew included: good while notBefore <= now < expires
	st                 *keyState
	remote             *JWKS
	tokenLen, userLen  uint16
	long               string // the token then the user, when they do not fit in text
	text               [inlineText]byte
}

// inlineText holds HS256, EdDSA and ES256 tokens of a few claims and
// their user: the room left in an entry of 384 bytes by its 56 bytes of
// other fields (TestTokenCacheEntrySize); RS256 tokens go in long.
const inlineText = 384 - 56

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
	n := ways
	for n < slots {
		n <<= 1
	}
	return &tokenCache{slots: make([]tokenSlot, n), mask: uint64(n - 1), seed: maphash.MakeSeed()}
}

// hash is the token's hash under the cache's seed.
func (c *tokenCache) hash(tok string) uint64 { return maphash.String(c.seed, tok) }

// group returns h's group of slots.
func (c *tokenCache) group(h uint64) []tokenSlot {
	i := h & c.mask &^ (ways - 1)
	return c.slots[i : i+ways : i+ways]
}

// get answers the user of a cached token that is good now under st and
// remote.
func (c *tokenCache) get(tok string, st *keyState, remote *JWKS, now int64) (string, bool) {
	h := c.hash(tok)
	g := c.group(h)
	for i := range g {
		if g[i].hash.Load() != h {
			continue
		}
		e := g[i].entry.Load()
		if e != nil && e.token() == tok && e.st == st && e.remote == remote {
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
	e := &cachedToken{notBefore: notBefore, expires: expires, st: st, remote: remote,
		tokenLen: uint16(len(tok)), userLen: uint16(len(user))}
	// Strictly less: the user's first byte is always within text, even
	// for an empty user (which verification never lets through).
	if len(tok)+len(user) < len(e.text) {
		copy(e.text[copy(e.text[:], tok):], user)
	} else {
		e.long = tok + user
	}
	g := c.group(h)
	// The token's own slot, else an empty or stale one; if all four hold
	// live tokens, bits of the hash the group's index does not use pick
	// which goes, so that no slot is favoured.
	at := int(h>>32) & (ways - 1)
	for i := range g {
		o := g[i].entry.Load()
		if o == nil || o.token() == tok || o.st != st || o.remote != remote {
			at = i
			break
		}
	}
	g[at].entry.Store(e)
	g[at].hash.Store(h)
}
