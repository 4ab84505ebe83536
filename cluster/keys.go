package cluster

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surgehq/surge"
)

// keyCache remembers idempotency keys known to be durable, for
// Store.LookupKey and the replays of a batch. It must answer without locks
// (the engine calls it on its lock-free fast path) and stay bounded, which
// an LRU library cannot give together: so it keeps two generations and,
// when the current one fills, drops the older one. A key it forgot is only
// "unknown here", and the pipeline asks Redis about such keys anyway
// (surge.Shared).
//
// A generation is a fixed-size open-addressing table written by one
// writer at a time (under mu) and read without locks: a record and its
// bytes are written before the atomic store that publishes its slot, and a
// reader follows a slot only after an atomic load. Nothing in it is a
// pointer for the garbage collector to follow but each record's order id
// (the ids of a batch share one string): the cache holds up to KeyCache
// keys of every purchase a node made, and as a sync.Map of boxed orders
// it was four objects and about a dozen pointers per key for every GC
// cycle to mark, and four allocations per purchase (docs/benchmarks.md,
// issue 14).
type keyCache struct {
	seed maphash.Seed
	max  int // keys per generation

	mu   sync.Mutex // serialises writers and rotation
	cur  atomic.Pointer[keyGen]
	prev atomic.Pointer[keyGen]
}

// keyGen is one generation: slots hold (hash's top 32 bits << 32 | record
// number + 1), 0 when empty, at most half of them used.
type keyGen struct {
	slots []atomic.Uint64
	mask  uint64
	recs  []keyRec // written up to n, by the writer only
	n     int
	arena []byte // sale id, user id and key of each record, back to back
	used  int
}

// keyRec is one key's first answer.
type keyRec struct {
	id                     string
	off                    uint32 // in arena
	saleLen, userLen, kLen uint8
	qty, created, expires  int64 // created and expires in Unix ms
}

// arenaPerKey is the arena's budget per key: a sale id, a user id and a
// key of the usual sizes (tens of bytes). Longer ones fill the arena
// first, and the generation rotates with fewer keys.
const arenaPerKey = 80

func newKeyCache(max int) *keyCache {
	if max < 2 {
		max = 2
	}
	c := &keyCache{seed: maphash.MakeSeed(), max: max / 2}
	c.cur.Store(c.newGen())
	c.prev.Store(&keyGen{slots: make([]atomic.Uint64, 1)}) // empty until the first rotation
	return c
}

func (c *keyCache) newGen() *keyGen {
	size := 1
	for size < 2*c.max {
		size <<= 1
	}
	return &keyGen{
		slots: make([]atomic.Uint64, size),
		mask:  uint64(size - 1),
		recs:  make([]keyRec, c.max),
		// At least room for one key of every field's greatest length.
		arena: make([]byte, max(c.max*arenaPerKey, 3*255)),
	}
}

func (c *keyCache) hash(sale, user, key string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(sale)
	h.WriteByte(0)
	h.WriteString(user)
	h.WriteByte(0)
	h.WriteString(key)
	return h.Sum64()
}

func (c *keyCache) get(sale, user, key string) (surge.Order, bool) {
	h := c.hash(sale, user, key)
	for _, g := range [2]*keyGen{c.cur.Load(), c.prev.Load()} {
		if r := g.find(h, sale, user, key); r != nil {
			return surge.Order{ID: r.id, SaleID: sale, UserID: user, Quantity: r.qty, Status: surge.OrderReserved,
				IdempotencyKey: key, CreatedAt: time.UnixMilli(r.created).UTC(), ExpiresAt: time.UnixMilli(r.expires).UTC()}, true
		}
	}
	return surge.Order{}, false
}

// find returns the record of (sale, user, key), nil if g has none.
func (g *keyGen) find(h uint64, sale, user, key string) *keyRec {
	tag := h >> 32
	for i := h & g.mask; ; i = (i + 1) & g.mask {
		v := g.slots[i].Load()
		if v == 0 {
			return nil
		}
		if v>>32 != tag {
			continue
		}
		r := &g.recs[uint32(v)-1]
		if int(r.saleLen) != len(sale) || int(r.userLen) != len(user) || int(r.kLen) != len(key) {
			continue
		}
		b := g.arena[r.off : int(r.off)+len(sale)+len(user)+len(key)]
		if string(b[:len(sale)]) == sale && string(b[len(sale):len(sale)+len(user)]) == user &&
			string(b[len(sale)+len(user):]) == key {
			return r
		}
	}
}

// put records o, the first answer of its key.
func (c *keyCache) put(o surge.Order) {
	c.mu.Lock()
	c.add(o)
	c.mu.Unlock()
}

// putAll records the orders of a batch, each the first answer of its key
// (those without a key are skipped).
func (c *keyCache) putAll(orders []surge.Order) {
	c.mu.Lock()
	for i := range orders {
		if orders[i].IdempotencyKey != "" {
			c.add(orders[i])
		}
	}
	c.mu.Unlock()
}

// add is put under mu.
func (c *keyCache) add(o surge.Order) {
	sale, user, key := o.SaleID, o.UserID, o.IdempotencyKey
	size := len(sale) + len(user) + len(key)
	if len(sale) > 255 || len(user) > 255 || len(key) > 255 {
		return // longer than any valid id or key: left unknown here
	}
	h := c.hash(sale, user, key)
	g := c.cur.Load()
	if g.find(h, sale, user, key) != nil {
		return
	}
	if g.n == len(g.recs) || g.used+size > len(g.arena) {
		c.prev.Store(g)
		g = c.newGen()
		c.cur.Store(g)
	}
	off := g.used
	g.used += copy(g.arena[off:], sale)
	g.used += copy(g.arena[g.used:], user)
	g.used += copy(g.arena[g.used:], key)
	g.recs[g.n] = keyRec{id: o.ID, off: uint32(off), saleLen: uint8(len(sale)), userLen: uint8(len(user)),
		kLen: uint8(len(key)), qty: o.Quantity, created: o.CreatedAt.UnixMilli(), expires: o.ExpiresAt.UnixMilli()}
	g.n++
	i := h & g.mask
	for g.slots[i].Load() != 0 {
		i = (i + 1) & g.mask
	}
	// Publishes the record: a reader that loads this slot sees it whole.
	g.slots[i].Store(h>>32<<32 | uint64(g.n))
}
