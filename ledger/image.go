package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/surgehq/surge"
)

// An image is a sale's state written out whole, for a store to read back
// at its next start instead of replaying every order (sqlite's ledger
// image). It holds what the state cannot derive: the records, the holders,
// their free entries and the arena's strings. The indexes and the heaps
// are rebuilt from those when it is read: the tables hash with a seed
// that is made anew for every state (maphash, so buyers cannot aim
// collisions) and cannot be written out, and the heaps follow from the
// records' statuses and times.
//
// Layout, little endian: the counts and the records (43 bytes each), the
// holders (18 bytes each), the free lists, the arena's chunks, then the
// sale's figures (ceiling, garbage, duplicate keys, forgot).

// ErrImage marks an image that cannot be the state of a sale.
var ErrImage = errors.New("ledger: malformed image")

const (
	recSize    = 43
	holderSize = 18
)

// WriteImage writes the state to w. The caller holds the lock, and no
// batch may be pending: only durable state is written.
func (l *Sale) WriteImage(w *bufio.Writer) error {
	s := &l.st
	var b [recSize]byte
	put := func(v uint64) error {
		binary.LittleEndian.PutUint64(b[:8], v)
		_, err := w.Write(b[:8])
		return err
	}
	if err := put(uint64(s.recs.len())); err != nil {
		return err
	}
	for _, p := range s.recs.p {
		for i := range p {
			r := &p[i]
			if r.pending {
				return fmt.Errorf("ledger: sale %s has a batch pending", l.Sale().ID)
			}
			binary.LittleEndian.PutUint64(b[0:], uint64(r.created))
			binary.LittleEndian.PutUint64(b[8:], uint64(r.expires))
			binary.LittleEndian.PutUint64(b[16:], uint64(r.qty))
			binary.LittleEndian.PutUint64(b[24:], r.off)
			binary.LittleEndian.PutUint32(b[32:], r.user)
			binary.LittleEndian.PutUint16(b[36:], r.idLen)
			binary.LittleEndian.PutUint16(b[38:], r.userLen)
			binary.LittleEndian.PutUint16(b[40:], r.keyLen)
			b[42] = byte(r.status)
			if _, err := w.Write(b[:recSize]); err != nil {
				return err
			}
		}
	}
	if err := put(uint64(s.users.len())); err != nil {
		return err
	}
	for _, p := range s.users.p {
		for i := range p {
			h := &p[i]
			binary.LittleEndian.PutUint64(b[0:], h.off)
			binary.LittleEndian.PutUint64(b[8:], uint64(h.held))
			binary.LittleEndian.PutUint16(b[16:], h.n)
			if _, err := w.Write(b[:holderSize]); err != nil {
				return err
			}
		}
	}
	for _, list := range [][]uint32{s.free, s.ufree} {
		if err := put(uint64(len(list))); err != nil {
			return err
		}
		for _, v := range list {
			binary.LittleEndian.PutUint32(b[:4], v)
			if _, err := w.Write(b[:4]); err != nil {
				return err
			}
		}
	}
	if err := put(uint64(len(s.arena.c))); err != nil {
		return err
	}
	for _, c := range s.arena.c {
		if err := put(uint64(len(c))); err != nil {
			return err
		}
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	forgot := uint64(0)
	if l.forgot.Load() {
		forgot = 1
	}
	for _, v := range []uint64{uint64(l.ceiling), uint64(s.arena.garbage), uint64(l.dupKeys), forgot} {
		if err := put(v); err != nil {
			return err
		}
	}
	return nil
}

// ImageSize is the bytes WriteImage writes. The caller holds the lock.
func (l *Sale) ImageSize() int {
	s := &l.st
	n := 8 + recSize*int(s.recs.len()) + 8 + holderSize*int(s.users.len()) + 8 + 4*len(s.free) + 8 + 4*len(s.ufree) + 8
	for _, c := range s.arena.c {
		n += 8 + len(c)
	}
	return n + 4*8
}

// Records is the orders the state keeps a record of (for a store deciding
// whether an image is worth writing). The caller holds the lock.
func (l *Sale) Records() int { return int(l.st.recs.len()) - len(l.st.free) }

// imageReader reads an image's fields from r, at most left bytes of it;
// the first failure sticks.
type imageReader struct {
	r    *bufio.Reader
	left uint64
	err  error
}

// take returns the next n bytes, which stay valid until the next read;
// n is at most a record's size.
func (r *imageReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.left {
		r.err = ErrImage
		return nil
	}
	v, err := r.r.Peek(int(n))
	if err != nil {
		r.err = fmt.Errorf("%w: %w", ErrImage, err)
		return nil
	}
	_, _ = r.r.Discard(int(n)) // what Peek returned: cannot fail
	r.left -= n
	return v
}

// fill reads len(b) bytes into b.
func (r *imageReader) fill(b []byte) {
	if r.err != nil {
		return
	}
	if uint64(len(b)) > r.left {
		r.err = ErrImage
		return
	}
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.err = fmt.Errorf("%w: %w", ErrImage, err)
		return
	}
	r.left -= uint64(len(b))
}

func (r *imageReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads a count of items of size bytes each, no more than the
// image still holds.
func (r *imageReader) count(size uint64) uint64 {
	n := r.u64()
	if r.err == nil && (n > math.MaxUint32 || n*size > r.left) {
		r.err = ErrImage
		return 0
	}
	return n
}

func (r *imageReader) list() []uint32 {
	n := r.count(4)
	if r.err != nil {
		return nil
	}
	out := make([]uint32, n)
	for i := range out {
		if v := r.take(4); v != nil {
			out[i] = binary.LittleEndian.Uint32(v)
		}
	}
	return out
}

// ReadImage returns the state of sale that WriteImage wrote as the next
// size bytes of r, read whole. The remaining stock is the sale's stock
// less the units its holders hold. It checks that every record and holder
// lies within the image, so a damaged one fails with ErrImage rather than
// a panic later; Verify checks the rules. It reads r as a stream rather
// than taking the image in memory: a buffer of the whole image is as
// large as the state read from it, and every page of fresh memory costs a
// fault (docs/benchmarks.md, 2026-12-04).
func ReadImage(sale surge.Sale, r *bufio.Reader, size int64) (*Sale, error) {
	l := New(sale)
	s := &l.st
	rd := &imageReader{r: r, left: uint64(max(size, 0))}
	n := rd.count(recSize)
	for i := uint64(0); i < n && rd.err == nil; i++ {
		v := rd.take(recSize)
		if v == nil {
			break
		}
		s.recs.push(rec{
			created: int64(binary.LittleEndian.Uint64(v[0:])),
			expires: int64(binary.LittleEndian.Uint64(v[8:])),
			qty:     int64(binary.LittleEndian.Uint64(v[16:])),
			off:     binary.LittleEndian.Uint64(v[24:]),
			user:    binary.LittleEndian.Uint32(v[32:]),
			idLen:   binary.LittleEndian.Uint16(v[36:]),
			userLen: binary.LittleEndian.Uint16(v[38:]),
			keyLen:  binary.LittleEndian.Uint16(v[40:]),
			status:  status(v[42]),
			heap:    -1,
		})
	}
	nu := rd.count(holderSize)
	for i := uint64(0); i < nu && rd.err == nil; i++ {
		v := rd.take(holderSize)
		if v == nil {
			break
		}
		s.users.push(holder{off: binary.LittleEndian.Uint64(v[0:]), held: int64(binary.LittleEndian.Uint64(v[8:])),
			n: binary.LittleEndian.Uint16(v[16:])})
	}
	s.free, s.ufree = rd.list(), rd.list()
	chunks := rd.count(8)
	for i := uint64(0); i < chunks && rd.err == nil; i++ {
		size := rd.u64()
		if size > chunkLen || size > rd.left {
			rd.err = ErrImage
			break
		}
		// Later allocations append to the last chunk, as they would have.
		c := make([]byte, size, chunkLen)
		if chunks == 1 {
			c = c[:size:max(size, 1024)]
		}
		rd.fill(c)
		s.arena.c = append(s.arena.c, c)
	}
	ceiling, garbage, dup, forgot := rd.u64(), rd.u64(), rd.u64(), rd.u64()
	if rd.err != nil {
		return nil, fmt.Errorf("sale %s: %w", sale.ID, rd.err)
	}
	if rd.left != 0 {
		return nil, fmt.Errorf("sale %s: %w: %d bytes past its end", sale.ID, ErrImage, rd.left)
	}
	if err := s.checkImage(); err != nil {
		return nil, fmt.Errorf("sale %s: %w", sale.ID, err)
	}
	l.RaiseCeiling(int64(ceiling))
	s.arena.garbage, l.dupKeys = int(garbage), int(dup)
	l.forgot.Store(forgot != 0)
	var held int64
	for i := range s.users.len() {
		held += s.users.at(i).held
	}
	l.remaining.Add(-held)
	s.rebuild()
	return l, nil
}

// checkImage checks that the strings of every record and holder lie in
// the arena, every live record's holder and every free entry exist, and
// the statuses are known.
func (s *state) checkImage() error {
	inArena := func(off uint64, n int) bool {
		k := off >> chunkBits
		return k < uint64(len(s.arena.c)) && off&(chunkLen-1)+uint64(n) <= uint64(len(s.arena.c[k]))
	}
	nr, nu := s.recs.len(), s.users.len()
	for i := range nr {
		r := s.recs.at(i)
		switch {
		case r.status > stExpired:
			return fmt.Errorf("%w: record %d has status %d", ErrImage, i, r.status)
		case r.status == stFree:
			continue
		case !inArena(r.off, int(r.idLen)+int(r.userLen)+int(r.keyLen)):
			return fmt.Errorf("%w: record %d's strings lie outside the arena", ErrImage, i)
		case r.status.order().Live() && (r.user >= nu || s.users.at(r.user).n == 0):
			return fmt.Errorf("%w: record %d has no holder", ErrImage, i)
		}
	}
	for i := range nu {
		if h := s.users.at(i); h.n > 0 && !inArena(h.off, int(h.n)) {
			return fmt.Errorf("%w: holder %d's id lies outside the arena", ErrImage, i)
		}
	}
	for _, v := range s.free {
		if v >= nr || s.recs.at(v).status != stFree {
			return fmt.Errorf("%w: free record %d", ErrImage, v)
		}
	}
	for _, v := range s.ufree {
		if v >= nu || s.users.at(v).n != 0 {
			return fmt.Errorf("%w: free holder %d", ErrImage, v)
		}
	}
	return nil
}

// rebuild makes the indexes and the heaps of the records and holders an
// image held: every keyed record by its key, every reserved one by its
// id and in the expiry heap, every keyed dead one in the forget heap,
// every holder by its user.
func (s *state) rebuild() {
	var keyed, reserved int
	for i := range s.recs.len() {
		r := s.recs.at(i)
		if r.status == stFree {
			continue
		}
		if r.keyLen > 0 {
			keyed++
		}
		if r.status == stReserved {
			reserved++
		}
	}
	s.byKey.reserve(keyed)
	s.byID.reserve(reserved)
	s.byUsr.reserve(int(s.users.len()))
	s.expiry = make([]uint32, 0, reserved)
	for i := range s.recs.len() {
		r := s.recs.at(i)
		if r.status == stFree {
			continue
		}
		if r.keyLen > 0 {
			s.byKey.put(slotOf(tagOf(s.recKeyHash(i)), i))
			s.byKey.n++
		}
		switch r.status {
		case stReserved:
			s.byID.put(slotOf(tagOf(s.recIDHash(i)), i))
			s.byID.n++
			r.heap = int32(len(s.expiry))
			s.expiry = append(s.expiry, i)
		case stCancelled, stExpired:
			if r.keyLen > 0 {
				s.forget = append(s.forget, i)
			}
		}
	}
	for i := range s.users.len() {
		if s.users.at(i).n > 0 {
			s.byUsr.put(slotOf(tagOf(s.userHash(i)), i))
			s.byUsr.n++
		}
	}
	for j := len(s.expiry)/2 - 1; j >= 0; j-- {
		s.expDown(j)
	}
	for j := len(s.forget)/2 - 1; j >= 0; j-- {
		s.fgDown(j)
	}
}

// fgDown moves entry j of the forget heap down to its place.
func (s *state) fgDown(j int) {
	f := s.forget
	for {
		c := 2*j + 1
		if c >= len(f) {
			return
		}
		if c+1 < len(f) && s.fgLess(c+1, c) {
			c++
		}
		if !s.fgLess(c, j) {
			return
		}
		f[j], f[c] = f[c], f[j]
		j = c
	}
}
