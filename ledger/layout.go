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

// arena holds the strings of records and holders. Freed strings are
// counted as garbage and squeezed out by compact once they are most of it.
type arena struct {
	b       []byte
	garbage int
}

func (a *arena) put(ss ...string) uint64 {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	a.b = room(a.b, n)
	off := uint64(len(a.b))
	for _, s := range ss {
		a.b = append(a.b, s...)
	}
	return off
}

// room makes room for n more elements in s, doubling: append grows a
// large slice by a quarter at a time, which copies a ledger restored
// order by order several times over.
func room[T any](s []T, n int) []T {
	if len(s)+n <= cap(s) {
		return s
	}
	grown := make([]T, len(s), max(2*cap(s), len(s)+n, 64))
	copy(grown, s)
	return grown
}

func (a *arena) get(off uint64, n uint32) []byte { return a.b[off : off+uint64(n)] }

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
type table struct {
	slots []uint64
	n     int
}

func tagOf(h uint64) uint32 { return uint32(h >> 32) }

func slotOf(tag, v uint32) uint64 { return uint64(tag)<<32 | uint64(v+1) }

// entry is the entry number a full slot holds.
func entry(slot uint64) uint32 { return uint32(slot) - 1 }

// find returns the slot of the entry eq accepts among those hashed to h,
// or the empty slot that ends the probe.
func (t *table) find(h uint64, eq func(uint32) bool) (int, bool) {
	if len(t.slots) == 0 {
		return -1, false
	}
	mask := len(t.slots) - 1
	tag := tagOf(h)
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		v := t.slots[i]
		if v == 0 {
			return i, false
		}
		if uint32(v>>32) == tag && eq(entry(v)) {
			return i, true
		}
	}
}

// insert adds entry v, hashed to h.
func (t *table) insert(h uint64, v uint32) {
	if 2*(t.n+1) > len(t.slots) {
		t.resize(max(16, 2*len(t.slots)))
	}
	t.put(slotOf(tagOf(h), v))
	t.n++
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

// reserve makes room for n entries in all.
func (t *table) reserve(n int) {
	if size := 2 * n; size > len(t.slots) {
		t.resize(1 << bits.Len(uint(size-1)))
	}
}

func (t *table) resize(size int) {
	old := t.slots
	t.slots = make([]uint64, size)
	for _, v := range old {
		if v != 0 {
			t.put(v)
		}
	}
}

// deleteAt empties slot i, shifting back the entries after it that
// probed past it, so that no probe ever stops short of its entry.
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
	t.n--
}

// Hashes: the arena's bytes and the callers' strings hash alike.

func (s *state) hashKey(user, key string) uint64 {
	return maphash.String(s.seed, user) ^ bits.RotateLeft64(maphash.String(s.seed, key), 29)*0x9e3779b97f4a7c15
}

func (s *state) recKeyHash(i uint32) uint64 {
	r := &s.recs[i]
	return maphash.Bytes(s.seed, s.arena.user(r)) ^ bits.RotateLeft64(maphash.Bytes(s.seed, s.arena.key(r)), 29)*0x9e3779b97f4a7c15
}

func (s *state) recIDHash(i uint32) uint64 { return maphash.Bytes(s.seed, s.arena.id(&s.recs[i])) }

func (s *state) userHash(i uint32) uint64 {
	h := &s.users[i]
	return maphash.Bytes(s.seed, s.arena.get(h.off, uint32(h.n)))
}

// grow makes room for n more orders (and as many buyers) holding about
// bytes of strings.
func (s *state) grow(n, bytes int) {
	if n <= 0 {
		return
	}
	if free := cap(s.recs) - len(s.recs); free < n {
		// An eighth more, so that the first orders after a restore do
		// not copy the whole slice at once under the sale's lock.
		recs := make([]rec, len(s.recs), len(s.recs)+n+n/8)
		copy(recs, s.recs)
		s.recs = recs
	}
	if free := cap(s.users) - len(s.users); free < n {
		users := make([]holder, len(s.users), len(s.users)+n)
		copy(users, s.users)
		s.users = users
	}
	if free := cap(s.arena.b) - len(s.arena.b); free < bytes {
		b := make([]byte, len(s.arena.b), len(s.arena.b)+bytes)
		copy(b, s.arena.b)
		s.arena.b = b
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
		s.recs[i] = r
		return i
	}
	s.recs = append(room(s.recs, 1), r)
	return uint32(len(s.recs) - 1)
}

// release frees record i, out of every index and heap already.
func (s *state) release(i uint32) {
	r := &s.recs[i]
	s.arena.garbage += int(r.idLen) + int(r.userLen) + int(r.keyLen)
	*r = rec{heap: -1}
	s.free = append(s.free, i)
}

func (s *state) findKey(user, key string) (uint32, bool) {
	slot, ok := s.byKey.find(s.hashKey(user, key), func(i uint32) bool {
		r := &s.recs[i]
		return string(s.arena.user(r)) == user && string(s.arena.key(r)) == key
	})
	if !ok {
		return 0, false
	}
	return entry(s.byKey.slots[slot]), true
}

// indexKey indexes record i by its key; false if the key is taken.
func (s *state) indexKey(i uint32) bool {
	r := &s.recs[i]
	user, key := s.arena.user(r), s.arena.key(r)
	h := s.recKeyHash(i)
	if _, ok := s.byKey.find(h, func(j uint32) bool {
		q := &s.recs[j]
		return string(s.arena.user(q)) == string(user) && string(s.arena.key(q)) == string(key)
	}); ok {
		return false
	}
	s.byKey.insert(h, i)
	return true
}

func (s *state) unindexKey(i uint32) {
	if slot, ok := s.byKey.find(s.recKeyHash(i), func(j uint32) bool { return j == i }); ok {
		s.byKey.deleteAt(slot)
	}
}

func (s *state) findID(id string) (uint32, bool) {
	slot, ok := s.byID.find(maphash.String(s.seed, id), func(i uint32) bool {
		return string(s.arena.id(&s.recs[i])) == id
	})
	if !ok {
		return 0, false
	}
	return entry(s.byID.slots[slot]), true
}

func (s *state) indexID(i uint32) { s.byID.insert(s.recIDHash(i), i) }

func (s *state) unindexID(i uint32) {
	if slot, ok := s.byID.find(s.recIDHash(i), func(j uint32) bool { return j == i }); ok {
		s.byID.deleteAt(slot)
	}
}

func (s *state) findUser(user string) (uint32, bool) {
	i, ok, _ := s.findUserHash(user)
	return i, ok
}

// findUserHash is findUser that also returns the user's hash.
func (s *state) findUserHash(user string) (uint32, bool, uint64) {
	h := maphash.String(s.seed, user)
	slot, ok := s.byUsr.find(h, func(i uint32) bool {
		u := &s.users[i]
		return string(s.arena.get(u.off, uint32(u.n))) == user
	})
	if !ok {
		return 0, false, h
	}
	return entry(s.byUsr.slots[slot]), true, h
}

// held is the units user holds.
func (s *state) held(user string) int64 {
	if i, ok := s.findUser(user); ok {
		return s.users[i].held
	}
	return 0
}

// hold adds q units to user's holding and returns its holder.
func (s *state) hold(user string, q int64) uint32 {
	i, ok, hash := s.findUserHash(user)
	if ok {
		s.users[i].held += q
		return i
	}
	h := holder{off: s.arena.put(user), held: q, n: length(user)}
	if n := len(s.ufree); n > 0 {
		i = s.ufree[n-1]
		s.ufree = s.ufree[:n-1]
		s.users[i] = h
	} else {
		s.users = append(room(s.users, 1), h)
		i = uint32(len(s.users) - 1)
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
	h := &s.users[i]
	if h.held -= q; h.held > 0 {
		return
	}
	slot, _ := s.byUsr.find(s.userHash(i), func(j uint32) bool { return j == i })
	s.byUsr.deleteAt(slot)
	s.arena.garbage += int(h.n)
	*h = holder{}
	s.ufree = append(s.ufree, i)
}

// compact squeezes freed strings out of the arena once they are most of
// it. The caller holds the write lock.
func (s *state) compact() {
	a := &s.arena
	if a.garbage < s.compactAt || 2*a.garbage < len(a.b) {
		return
	}
	b := make([]byte, 0, len(a.b)-a.garbage)
	for i := range s.recs {
		r := &s.recs[i]
		if r.status == stFree {
			continue
		}
		n := uint64(r.idLen) + uint64(r.userLen) + uint64(r.keyLen)
		off := uint64(len(b))
		b = append(b, a.b[r.off:r.off+n]...)
		r.off = off
	}
	for i := range s.users {
		h := &s.users[i]
		if h.n == 0 {
			continue
		}
		off := uint64(len(b))
		b = append(b, a.get(h.off, uint32(h.n))...)
		h.off = off
	}
	*a = arena{b: b}
	s.compactions++
}

// The expiry heap: committed reserved orders, earliest ExpiresAt first.

func (s *state) expLess(a, b int) bool {
	return s.recs[s.expiry[a]].expires < s.recs[s.expiry[b]].expires
}

func (s *state) expSwap(a, b int) {
	e := s.expiry
	e[a], e[b] = e[b], e[a]
	s.recs[e[a]].heap = int32(a)
	s.recs[e[b]].heap = int32(b)
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
	s.recs[i].heap = int32(len(s.expiry))
	s.expiry = append(s.expiry, i)
	s.expUp(len(s.expiry) - 1)
}

// removeExpiry takes record i out of the expiry heap, if it is there.
func (s *state) removeExpiry(i uint32) {
	p := int(s.recs[i].heap)
	if p < 0 {
		return
	}
	last := len(s.expiry) - 1
	if p != last {
		s.expSwap(p, last)
	}
	s.expiry = s.expiry[:last]
	s.recs[i].heap = -1
	if p != last {
		s.expDown(p)
		s.expUp(p)
	}
}

// The forget heap: keyed orders no longer live, oldest first.

func (s *state) fgLess(a, b int) bool {
	return s.recs[s.forget[a]].created < s.recs[s.forget[b]].created
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
	f = f[:last]
	s.forget = f
	for j := 0; ; {
		c := 2*j + 1
		if c >= last {
			break
		}
		if c+1 < last && s.fgLess(c+1, c) {
			c++
		}
		if !s.fgLess(c, j) {
			break
		}
		f[j], f[c] = f[c], f[j]
		j = c
	}
	return top
}
