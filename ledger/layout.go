package ledger

import (
	"hash/maphash"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/surgehq/surge"
)

// The layout of a sale's state: nothing in it is a pointer the garbage
// collector must follow but the few slices themselves. A record is 48
// bytes; its id, user id and key sit back to back in the arena; the
// tables hold record numbers and hash tags (8 bytes a slot, at most half
// full).

// rec is one order the state keeps: a reserved one, or one whose key is
// remembered (paid, or dead within the idempotency window). A paid order
// without a key needs no record: its units are counted on its holder.
type rec struct {
	created, expires int64 // Unix ns (toNano)
	qty              int64
	off              uint64 // arena offset of id, user id, key
	user             uint32 // its holder while the order is live
	heap             int32  // place in the expiry heap, -1 if not there
	idLen, userLen   uint16
	keyLen           uint16
	status           status
	pending          bool // decided, not yet committed
}

// holder is a buyer holding units (reserved and paid); one with none is
// dropped.
type holder struct {
	off  uint64 // arena offset of the user id
	held int64
	n    uint16 // length of the user id; 0: unused entry
}

type status uint8

const (
	stFree status = iota
	stReserved
	stPaid
	stCancelled
	stExpired
)

func statusOf(s surge.OrderStatus) status {
	switch s {
	case surge.OrderReserved:
		return stReserved
	case surge.OrderPaid:
		return stPaid
	case surge.OrderCancelled:
		return stCancelled
	default:
		return stExpired
	}
}

func (s status) order() surge.OrderStatus {
	switch s {
	case stReserved:
		return surge.OrderReserved
	case stPaid:
		return surge.OrderPaid
	case stCancelled:
		return surge.OrderCancelled
	default:
		return surge.OrderExpired
	}
}

// zeroTime stands for the zero time.Time, whose UnixNano is undefined.
const zeroTime = math.MinInt64

func toNano(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func length(s string) uint16 {
	if len(s) > math.MaxUint16 {
		// Ids and keys are validated far shorter (surge.MaxKeyLen).
		panic("ledger: id or key of " + strconv.Itoa(len(s)) + " bytes")
	}
	return uint16(len(s))
}

// pages is a growable array whose growth never moves what it holds: past
// its first page, which append grows up to pageLen elements (a small
// sale stays small), it adds a page at a time. A slice grown by doubling
// copied the whole state when it ran out of room — for a sale restored
// with a million orders, 50 MB per slice under the sale's lock, on the
// first spike after the start: a 45 ms batch every purchase waited for,
// and a copy the collector cannot interrupt to scan the goroutine's stack
// (docs/benchmarks.md). The pages hold no pointers, only the short list
// of them does. All pages but the last are full, so element i is at page
// i>>pageBits.
type pages[T any] struct {
	p [][]T
}

const (
	pageBits = 14 // 16,384 elements: 768 KiB of records
	pageLen  = 1 << pageBits
)

func (s *pages[T]) at(i uint32) *T { return &s.p[i>>pageBits][i&(pageLen-1)] }

// len is the number of elements.
func (s *pages[T]) len() uint32 {
	k := len(s.p) - 1
	if k < 0 {
		return 0
	}
	return uint32(k*pageLen + len(s.p[k]))
}

// push appends v and returns its index.
func (s *pages[T]) push(v T) uint32 {
	k := len(s.p) - 1
	if k < 0 || len(s.p[k]) == pageLen {
		size := pageLen
		if k < 0 {
			size = 64
		}
		s.p = append(s.p, make([]T, 0, size))
		k++
	}
	// The first page grows as append grows it, to pageLen elements at
	// most; later pages are made whole.
	s.p[k] = append(s.p[k], v)
	return uint32(k*pageLen + len(s.p[k]) - 1)
}

// arena holds the strings of records and holders in chunks that, like
// pages, are never copied to grow: a record's strings sit back to back in
// one chunk, at offset off&(chunkLen-1) of chunk off>>chunkBits. Freed
// strings are counted as garbage and squeezed out by compact once they
// are most of it.
type arena struct {
	c       [][]byte
	garbage int
}

const (
	chunkBits = 20 // 1 MiB; a record's strings are at most 3 × 64 KiB
	chunkLen  = 1 << chunkBits
)

func (a *arena) put(ss ...string) uint64 {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	off, b := a.alloc(n)
	for _, s := range ss {
		b = b[copy(b, s):]
	}
	return off
}

// alloc takes n bytes of the arena: their offset, and the bytes to fill.
func (a *arena) alloc(n int) (uint64, []byte) {
	k := len(a.c) - 1
	if k < 0 || len(a.c[k])+n > chunkLen {
		// The first chunk starts small and grows by doubling up to
		// chunkLen; the next ones are made whole. A chunk's unused
		// tail is less than one record's strings.
		size := chunkLen
		if k < 0 {
			size = max(n, 1024)
		}
		a.c = append(a.c, make([]byte, 0, size))
		k++
	}
	c := a.c[k]
	if len(c)+n > cap(c) { // the first chunk, not yet whole
		grown := make([]byte, len(c), min(max(2*cap(c), len(c)+n), chunkLen))
		copy(grown, c)
		c = grown
	}
	off := uint64(k)<<chunkBits | uint64(len(c))
	c = c[:len(c)+n]
	a.c[k] = c
	return off, c[len(c)-n:]
}

// used is the bytes of strings the arena holds, garbage included.
func (a *arena) used() int {
	n := 0
	for _, c := range a.c {
		n += len(c)
	}
	return n
}

func (a *arena) get(off uint64, n uint32) []byte {
	c := a.c[off>>chunkBits]
	o := off & (chunkLen - 1)
	return c[o : o+uint64(n)]
}

func (a *arena) id(r *rec) []byte { return a.get(r.off, uint32(r.idLen)) }

func (a *arena) user(r *rec) []byte { return a.get(r.off+uint64(r.idLen), uint32(r.userLen)) }

func (a *arena) key(r *rec) []byte {
	return a.get(r.off+uint64(r.idLen)+uint64(r.userLen), uint32(r.keyLen))
}

// table is an open-addressed hash index of entry numbers with linear
// probing, kept at most half full. A slot is 8 bytes and holds no pointer:
// the entry's number plus one (0: empty) in the low half, the high 32 bits
// of its hash (the tag) in the high half. The tag places the entry (its
// home slot is tag & mask) and screens the comparisons: a probe reads the
// entry behind a slot, in the records and the arena, far away in memory,
// only when the tags match, and growing or deleting never rehashes an
// entry's strings. (A restore of a million orders spent a third of its
// time in those comparisons and rehashes with 4-byte slots.)
//
// Growing moves the entries a few at a time: a table of a million entries
// doubled in one go took 95 ms under the sale's lock, most of it the
// kernel faulting in the new 32 MB (docs/benchmarks.md). While a move is
// under way the entries are in slots or, not yet moved, in old from
// index moved on; every insert moves the next moveStep slots of old.
// Old is never rearranged meanwhile (a delete there leaves a tombstone,
// a slot whose entry half is 0), so its probes stay whole.
type table struct {
	slots []uint64
	n     int // entries, in slots and in old together
	old   []uint64
	moved int
}

// moveStep is the slots of old each insert moves. A move starts when
// slots is half full with n entries, into a table of 4n slots; it ends
// within 2n/moveStep inserts, by when the new table holds 2n + n/4 at
// most: under half full.
const moveStep = 8

func tagOf(h uint64) uint32 { return uint32(h >> 32) }

func slotOf(tag, v uint32) uint64 { return uint64(tag)<<32 | uint64(v+1) }

// entry is the entry number a full slot holds.
func entry(slot uint64) uint32 { return uint32(slot) - 1 }

// tombstone is a slot of old whose entry was deleted: not empty, so probes
// go past it, but holding no entry.
const tombstone = math.MaxUint32 << 32

// full reports whether slot v holds an entry (not empty, not a tombstone).
func full(v uint64) bool { return uint32(v) != 0 }

// probe returns the index in slots of the entry eq accepts among those
// hashed to tag, or -1.
func probe(slots []uint64, tag uint32, eq func(uint32) bool) int {
	if len(slots) == 0 {
		return -1
	}
	mask := len(slots) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		v := slots[i]
		if v == 0 {
			return -1
		}
		if full(v) && uint32(v>>32) == tag && eq(entry(v)) {
			return i
		}
	}
}

// get returns the entry eq accepts among those hashed to h.
func (t *table) get(h uint64, eq func(uint32) bool) (uint32, bool) {
	tag := tagOf(h)
	if i := probe(t.slots, tag, eq); i >= 0 {
		return entry(t.slots[i]), true
	}
	// An entry of old below moved was moved, or deleted and left a
	// tombstone: a match in old is one not moved yet.
	if i := probe(t.old, tag, eq); i >= 0 {
		return entry(t.old[i]), true
	}
	return 0, false
}

// insert adds entry v, hashed to h.
func (t *table) insert(h uint64, v uint32) {
	if 2*(t.n+1) > len(t.slots) {
		t.finishMove()
		t.old, t.moved = t.slots, 0
		t.slots = make([]uint64, max(16, 2*len(t.slots)))
	}
	t.put(slotOf(tagOf(h), v))
	t.n++
	t.move(moveStep)
}

// move moves up to k more slots of old into slots.
func (t *table) move(k int) {
	if t.old == nil {
		return
	}
	end := min(t.moved+k, len(t.old))
	for _, v := range t.old[t.moved:end] {
		if full(v) {
			t.put(v)
		}
	}
	if t.moved = end; end == len(t.old) {
		t.old, t.moved = nil, 0
	}
}

func (t *table) finishMove() {
	if t.old != nil {
		t.move(len(t.old))
	}
}

// put places a full slot at the first empty slot from its home.
func (t *table) put(slot uint64) {
	mask := len(t.slots) - 1
	i := int(slot>>32) & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot
}

// reserve makes room for n entries in all, at once (a store presizing the
// indexes it is about to restore).
func (t *table) reserve(n int) {
	t.finishMove()
	if size := 2 * n; size > len(t.slots) {
		t.old, t.moved = t.slots, 0
		t.slots = make([]uint64, 1<<bits.Len(uint(size-1)))
		t.finishMove()
	}
}

// remove deletes the entry eq accepts among those hashed to h, if any.
func (t *table) remove(h uint64, eq func(uint32) bool) {
	tag := tagOf(h)
	if i := probe(t.slots, tag, eq); i >= 0 {
		t.deleteAt(i)
		t.n--
	}
	// A moved entry's slot in old must not answer get any more; one not
	// moved yet is only there.
	if i := probe(t.old, tag, eq); i >= 0 {
		t.old[i] = tombstone
		if i >= t.moved {
			t.n--
		}
	}
}

// deleteAt empties slot i of slots, shifting back the entries after it
// that probed past it, so that no probe ever stops short of its entry.
func (t *table) deleteAt(i int) {
	mask := len(t.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		v := t.slots[j]
		if v == 0 {
			break
		}
		k := int(v>>32) & mask
		// v stays unless its home k lies cyclically outside (i, j].
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			t.slots[i] = v
			i = j
		}
	}
	t.slots[i] = 0
}

// homes reads the slots lookups of the hashes hs start at (RestoreAll).
func (t *table) homes(hs []uint64) uint64 {
	if len(t.slots) == 0 {
		return 0
	}
	var sum uint64
	mask := len(t.slots) - 1
	for _, h := range hs {
		sum += t.slots[int(tagOf(h))&mask]
	}
	return sum
}

// warm reads the slots the restore of orders will start its lookups at:
// the buyer's, the key's and, for a reserved order, the id's. The hashes
// come first, in a loop of their own, so that the loop of reads is short
// enough for the processor to run many iterations ahead.
func (s *state) warm(orders []surge.Order) uint64 {
	var sum uint64
	for len(orders) > 0 {
		n := min(len(orders), warmBatch)
		var usr, key, id [warmBatch]uint64
		nk, ni := 0, 0
		for i := range orders[:n] {
			o := &orders[i]
			usr[i] = maphash.String(s.seed, o.UserID)
			if o.IdempotencyKey != "" {
				key[nk] = s.hashKey(o.UserID, o.IdempotencyKey)
				nk++
			}
			if o.Status == surge.OrderReserved {
				id[ni] = maphash.String(s.seed, o.ID)
				ni++
			}
		}
		sum += s.byUsr.homes(usr[:n]) + s.byKey.homes(key[:nk]) + s.byID.homes(id[:ni])
		orders = orders[n:]
	}
	return sum
}

// warmBatch orders are warmed at a time: their hashes stay on the stack.
const warmBatch = 128

// Hashes: the arena's bytes and the callers' strings hash alike.

func (s *state) hashKey(user, key string) uint64 {
	return maphash.String(s.seed, user) ^ bits.RotateLeft64(maphash.String(s.seed, key), 29)*0x9e3779b97f4a7c15
}

func (s *state) recKeyHash(i uint32) uint64 {
	r := s.recs.at(i)
	return maphash.Bytes(s.seed, s.arena.user(r)) ^ bits.RotateLeft64(maphash.Bytes(s.seed, s.arena.key(r)), 29)*0x9e3779b97f4a7c15
}

func (s *state) recIDHash(i uint32) uint64 { return maphash.Bytes(s.seed, s.arena.id(s.recs.at(i))) }

func (s *state) userHash(i uint32) uint64 {
	h := s.users.at(i)
	return maphash.Bytes(s.seed, s.arena.get(h.off, uint32(h.n)))
}

// grow makes room in the indexes for n more orders and as many buyers
// (records, holders and strings grow without copying: pages, arena).
func (s *state) grow(n int) {
	if n <= 0 {
		return
	}
	s.byKey.reserve(s.byKey.n + n)
	s.byUsr.reserve(s.byUsr.n + n)
}

// add stores o as a new record, in no index yet; user is its holder if
// o is live (hold returned it).
func (s *state) add(o surge.Order, pending bool, user uint32) uint32 {
	r := rec{
		created: toNano(o.CreatedAt), expires: toNano(o.ExpiresAt), qty: o.Quantity,
		off:   s.arena.put(o.ID, o.UserID, o.IdempotencyKey),
		idLen: length(o.ID), userLen: length(o.UserID), keyLen: length(o.IdempotencyKey),
		status: statusOf(o.Status), pending: pending, heap: -1,
	}
	if o.Status.Live() {
		r.user = user
	}
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		*s.recs.at(i) = r
		return i
	}
	return s.recs.push(r)
}

// release frees record i, out of every index and heap already.
func (s *state) release(i uint32) {
	r := s.recs.at(i)
	s.arena.garbage += int(r.idLen) + int(r.userLen) + int(r.keyLen)
	*r = rec{heap: -1}
	s.free = append(s.free, i)
}

func (s *state) findKey(user, key string) (uint32, bool) {
	return s.byKey.get(s.hashKey(user, key), func(i uint32) bool {
		r := s.recs.at(i)
		return string(s.arena.user(r)) == user && string(s.arena.key(r)) == key
	})
}

// indexKey indexes record i by its key; false if the key is taken.
func (s *state) indexKey(i uint32) bool {
	r := s.recs.at(i)
	user, key := s.arena.user(r), s.arena.key(r)
	h := s.recKeyHash(i)
	if _, ok := s.byKey.get(h, func(j uint32) bool {
		q := s.recs.at(j)
		return string(s.arena.user(q)) == string(user) && string(s.arena.key(q)) == string(key)
	}); ok {
		return false
	}
	s.byKey.insert(h, i)
	return true
}

func (s *state) unindexKey(i uint32) {
	s.byKey.remove(s.recKeyHash(i), func(j uint32) bool { return j == i })
}

func (s *state) findID(id string) (uint32, bool) {
	return s.byID.get(maphash.String(s.seed, id), func(i uint32) bool {
		return string(s.arena.id(s.recs.at(i))) == id
	})
}

func (s *state) indexID(i uint32) { s.byID.insert(s.recIDHash(i), i) }

func (s *state) unindexID(i uint32) {
	s.byID.remove(s.recIDHash(i), func(j uint32) bool { return j == i })
}

func (s *state) findUser(user string) (uint32, bool) {
	i, ok, _ := s.findUserHash(user)
	return i, ok
}

// findUserHash is findUser that also returns the user's hash.
func (s *state) findUserHash(user string) (uint32, bool, uint64) {
	h := maphash.String(s.seed, user)
	i, ok := s.byUsr.get(h, func(i uint32) bool {
		u := s.users.at(i)
		return string(s.arena.get(u.off, uint32(u.n))) == user
	})
	return i, ok, h
}

// held is the units user holds.
func (s *state) held(user string) int64 {
	if i, ok := s.findUser(user); ok {
		return s.users.at(i).held
	}
	return 0
}

// hold adds q units to user's holding and returns its holder.
func (s *state) hold(user string, q int64) uint32 {
	i, ok, hash := s.findUserHash(user)
	if ok {
		s.users.at(i).held += q
		return i
	}
	h := holder{off: s.arena.put(user), held: q, n: length(user)}
	if n := len(s.ufree); n > 0 {
		i = s.ufree[n-1]
		s.ufree = s.ufree[:n-1]
		*s.users.at(i) = h
	} else {
		i = s.users.push(h)
	}
	s.byUsr.insert(hash, i)
	return i
}

// unhold takes q units off user's holding, dropping a holder left with
// none.
func (s *state) unhold(user string, q int64) {
	if i, ok := s.findUser(user); ok {
		s.unholdAt(i, q)
	}
}

// unholdAt is unhold of holder i.
func (s *state) unholdAt(i uint32, q int64) {
	h := s.users.at(i)
	if h.held -= q; h.held > 0 {
		return
	}
	s.byUsr.remove(s.userHash(i), func(j uint32) bool { return j == i })
	s.arena.garbage += int(h.n)
	*h = holder{}
	s.ufree = append(s.ufree, i)
}

// compact squeezes freed strings out of the arena once they are most of
// it. The caller holds the write lock.
func (s *state) compact() {
	a := &s.arena
	if a.garbage < s.compactAt || 2*a.garbage < a.used() {
		return
	}
	var b arena
	for i := range s.recs.len() {
		r := s.recs.at(i)
		if r.status == stFree {
			continue
		}
		n := uint32(r.idLen) + uint32(r.userLen) + uint32(r.keyLen)
		off, dst := b.alloc(int(n))
		copy(dst, a.get(r.off, n))
		r.off = off
	}
	for i := range s.users.len() {
		h := s.users.at(i)
		if h.n == 0 {
			continue
		}
		off, dst := b.alloc(int(h.n))
		copy(dst, a.get(h.off, uint32(h.n)))
		h.off = off
	}
	*a = b
	s.compactions++
}

// The expiry heap: committed reserved orders, earliest ExpiresAt first.

func (s *state) expLess(a, b int) bool {
	return s.recs.at(s.expiry[a]).expires < s.recs.at(s.expiry[b]).expires
}

func (s *state) expSwap(a, b int) {
	e := s.expiry
	e[a], e[b] = e[b], e[a]
	s.recs.at(e[a]).heap = int32(a)
	s.recs.at(e[b]).heap = int32(b)
}

func (s *state) expUp(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if !s.expLess(j, p) {
			return
		}
		s.expSwap(j, p)
		j = p
	}
}

func (s *state) expDown(j int) {
	n := len(s.expiry)
	for {
		c := 2*j + 1
		if c >= n {
			return
		}
		if c+1 < n && s.expLess(c+1, c) {
			c++
		}
		if !s.expLess(c, j) {
			return
		}
		s.expSwap(j, c)
		j = c
	}
}

func (s *state) pushExpiry(i uint32) {
	s.recs.at(i).heap = int32(len(s.expiry))
	s.expiry = append(s.expiry, i)
	s.expUp(len(s.expiry) - 1)
}

// removeExpiry takes record i out of the expiry heap, if it is there.
func (s *state) removeExpiry(i uint32) {
	p := int(s.recs.at(i).heap)
	if p < 0 {
		return
	}
	last := len(s.expiry) - 1
	if p != last {
		s.expSwap(p, last)
	}
	s.expiry = s.expiry[:last]
	s.recs.at(i).heap = -1
	if p != last {
		s.expDown(p)
		s.expUp(p)
	}
}

// The forget heap: keyed orders no longer live, oldest first.

func (s *state) fgLess(a, b int) bool {
	return s.recs.at(s.forget[a]).created < s.recs.at(s.forget[b]).created
}

func (s *state) pushForget(i uint32) {
	s.forget = append(s.forget, i)
	f := s.forget
	for j := len(f) - 1; j > 0; {
		p := (j - 1) / 2
		if !s.fgLess(j, p) {
			break
		}
		f[j], f[p] = f[p], f[j]
		j = p
	}
}

func (s *state) popForget() uint32 {
	f := s.forget
	top := f[0]
	last := len(f) - 1
	f[0] = f[last]
	s.forget = f[:last]
	s.fgDown(0)
	return top
}
