package surge

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// sortable is base32 with an alphabet in ASCII order (Crockford's, lower
// case), so ids sort like the bytes they encode.
var sortable = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// OrderIDs generates order ids: 48 bits of milliseconds since the epoch,
// then 80 random bits. Time first keeps inserts into the database's id
// index at its right edge instead of scattering them over random pages,
// which is most of the cost of a random id. The tail is drawn afresh for
// every id, with no counter, so an id reveals its creation millisecond and
// nothing else: not how many orders this or any node made, nor the order
// of ids within one millisecond. Two ids collide only if they share the
// millisecond and all 80 bits (odds about n²/2⁸¹ for n ids in one
// millisecond); the stores' unique index on ids would refuse such a batch
// rather than merge two orders. The zero value is ready to use.
type OrderIDs struct{}

// Next returns a new order id: "o_" and 26 characters.
func (*OrderIDs) Next(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:16]) // never fails on supported platforms (Go 1.24+)
	buf := make([]byte, 2, 2+26)
	buf[0], buf[1] = 'o', '_'
	return string(sortable.AppendEncode(buf, b[:]))
}

// Fill sets every element of ids to a new id, each as Next makes one,
// from one read of the random source per 64 ids and one string for all:
// a batch's ids, without two allocations and a read per id. The ids share
// the string's memory, which lives as long as any of them does.
func (*OrderIDs) Fill(now time.Time, ids []string) {
	const idLen, chunk = 2 + 26, 64
	if len(ids) == 0 {
		return
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16)
	var rnd [10 * chunk]byte
	buf := make([]byte, 0, idLen*len(ids))
	for i := range ids {
		if i%chunk == 0 {
			_, _ = rand.Read(rnd[:]) // never fails on supported platforms (Go 1.24+)
		}
		copy(b[6:16], rnd[10*(i%chunk):])
		buf = append(buf, 'o', '_')
		buf = sortable.AppendEncode(buf, b[:])
	}
	all := string(buf)
	for i := range ids {
		ids[i] = all[i*idLen : (i+1)*idLen]
	}
}
