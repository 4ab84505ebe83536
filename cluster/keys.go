package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/surgehq/surge"
)

// keyCache remembers idempotency keys known to be durable, for
// Store.LookupKey. It must answer without locks (the engine calls it on its
// lock-free fast path) and stay bounded, which an LRU library cannot give
// together: so it keeps two generations of sync.Map and, when the current
// one fills, drops the older one. A key it forgot is only "unknown here",
// and the pipeline asks Redis about such keys anyway (surge.Shared).
type keyCache struct {
	max int64

	mu   sync.Mutex // serialises rotation
	cur  atomic.Pointer[keyGen]
	prev atomic.Pointer[keyGen]
}

type keyGen struct {
	m sync.Map // cacheKey -> surge.Order (the first answer)
	n atomic.Int64
}

type cacheKey struct{ sale, user, key string }

func newKeyCache(max int) *keyCache {
	if max < 2 {
		max = 2
	}
	c := &keyCache{max: int64(max / 2)}
	c.cur.Store(&keyGen{})
	c.prev.Store(&keyGen{})
	return c
}

func (c *keyCache) get(sale, user, key string) (surge.Order, bool) {
	k := cacheKey{sale, user, key}
	if v, ok := c.cur.Load().m.Load(k); ok {
		return v.(surge.Order), true
	}
	if v, ok := c.prev.Load().m.Load(k); ok {
		return v.(surge.Order), true
	}
	return surge.Order{}, false
}

// put records o, the first answer of its key.
func (c *keyCache) put(o surge.Order) {
	g := c.cur.Load()
	if _, loaded := g.m.LoadOrStore(cacheKey{o.SaleID, o.UserID, o.IdempotencyKey}, o); loaded {
		return
	}
	if g.n.Add(1) < c.max {
		return
	}
	c.mu.Lock()
	if c.cur.Load() == g {
		c.prev.Store(g)
		c.cur.Store(&keyGen{})
	}
	c.mu.Unlock()
}
