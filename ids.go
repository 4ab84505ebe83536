package surge

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// sortable is base32 with an alphabet in ASCII order (Crockford's, lower
// case), so ids sort like the bytes they encode.
var sortable = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// OrderIDs generates order ids that sort by creation time: 48 bits of
// milliseconds, a 24-bit counter, and 24 random bits. Time order keeps
// inserts into the database's id index at its right edge instead of
// scattering them over random pages, which is most of the cost of a
// random id; the counter keeps ids from one generator distinct within a
// millisecond and the random bits keep generators on different nodes
// apart. The zero value is ready to use.
type OrderIDs struct {
	seq atomic.Uint32
}

// Next returns a new order id: "o_" and 20 characters.
func (g *OrderIDs) Next(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16)
	n := g.seq.Add(1)
	b[6], b[7], b[8] = byte(n>>16), byte(n>>8), byte(n)
	_, _ = rand.Read(b[9:12])
	buf := make([]byte, 2, 2+20)
	buf[0], buf[1] = 'o', '_'
	return string(sortable.AppendEncode(buf, b[:]))
}
