package waitroom

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/surgehq/surge"
)

// A ticket is the proof of a buyer's place in a queue, handed to the buyer
// and sent back with each queue read and purchase. Its binary form is
//
//	version (2) | len+sale id | len+user id | seq | draw | slot+1 | issued (Unix ms) | epoch | HMAC-SHA256 (32)
//
// with lengths and numbers as unsigned varints, and the whole in base64url
// without padding: about 80 characters for short ids. The MAC covers every
// byte before it, under a domain-separation prefix, so no field can be
// changed, and the ids are inside, so a ticket cannot be moved to another
// sale or buyer, and a refusal can say which check failed. The MAC is not
// truncated: 43 characters buy the whole 256-bit margin. The epoch names
// the incarnation of the queue that placed the buyer (see Backend.Epoch),
// so a ticket of a queue lost since (a restart) is refused. Version 1
// tickets had none; they are refused as issued before a restart. The draw
// is written 0 (Room.status): a ticket is readable by its holder, and a
// lottery's draws are its order. The field stays, so that tickets of
// builds that wrote it still read, as every build reads these.
const (
	ticketVersion = 2
	macSize       = sha256.Size
	// MaxTicketLen bounds the text of a ticket (the longest valid one,
	// with 64-character ids, is about 280 characters).
	MaxTicketLen = 512
	// MinSecretLen is the shortest HMAC key accepted: 256 bits.
	MinSecretLen = 32
)

var ticketDomain = []byte("surge waiting-room ticket\x00")

// ticketEncoding is strict: one spelling per ticket, so a ticket cannot be
// varied (padding, trailing bits) to look new.
var ticketEncoding = base64.RawURLEncoding.Strict()

var (
	errMalformed = errors.New("not a waiting-room ticket")
	errForged    = errors.New("the ticket's signature does not verify: it was altered, forged, or signed with another server's key")
	errStale     = errors.New("the ticket was issued before the waiting room restarted, and its place was lost; join again for a new place")
)

// ticket is what a ticket says, once its MAC is verified.
type ticket struct {
	SaleID, UserID string
	Seq            int64
	Draw           uint64
	Slot           int64 // Unassigned before a lottery's draw
	Issued         time.Time
	Epoch          uint64 // the queue's epoch when the ticket was issued
}

// signer signs tickets with one HMAC key and verifies them with it or
// with one of the previous keys.
type signer struct {
	key      []byte
	previous [][]byte
}

func (s signer) mac(payload []byte) []byte { return macWith(s.key, payload) }

func macWith(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(ticketDomain)
	m.Write(payload)
	return m.Sum(nil)
}

// verifies reports whether sum is payload's MAC under a key of s.
func (s signer) verifies(payload, sum []byte) bool {
	ok := hmac.Equal(sum, s.mac(payload))
	for _, k := range s.previous {
		ok = hmac.Equal(sum, macWith(k, payload)) || ok
	}
	return ok
}

func (s signer) sign(t ticket) string {
	b := make([]byte, 0, 64+len(t.SaleID)+len(t.UserID))
	b = append(b, ticketVersion)
	b = binary.AppendUvarint(b, uint64(len(t.SaleID)))
	b = append(b, t.SaleID...)
	b = binary.AppendUvarint(b, uint64(len(t.UserID)))
	b = append(b, t.UserID...)
	b = binary.AppendUvarint(b, uint64(t.Seq))
	b = binary.AppendUvarint(b, t.Draw)
	b = binary.AppendUvarint(b, uint64(t.Slot+1))
	b = binary.AppendUvarint(b, uint64(max(t.Issued.UnixMilli(), 0)))
	b = binary.AppendUvarint(b, t.Epoch)
	b = append(b, s.mac(b)...)
	return ticketEncoding.EncodeToString(b)
}

// parse verifies a ticket's MAC, in constant time, before reading any
// field: nothing of a forged ticket is interpreted.
func (s signer) parse(text string) (ticket, error) {
	if len(text) > MaxTicketLen {
		return ticket{}, errMalformed
	}
	// The decoder skips \r and \n even in strict mode: one ticket, one
	// spelling, so only the alphabet is let through.
	for i := 0; i < len(text); i++ {
		if c := text[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return ticket{}, errMalformed
		}
	}
	b, err := ticketEncoding.DecodeString(text)
	if err != nil || len(b) < 1+macSize {
		return ticket{}, errMalformed
	}
	payload, sum := b[:len(b)-macSize], b[len(b)-macSize:]
	if !s.verifies(payload, sum) {
		return ticket{}, errForged
	}
	// Signed by this key, so written by sign; the checks below guard
	// against a key shared with something else, not against forgery.
	r := reader{b: payload}
	var t ticket
	switch r.byte() {
	case ticketVersion:
	case 1:
		return ticket{}, errStale
	default:
		return ticket{}, errMalformed
	}
	t.SaleID = r.string()
	t.UserID = r.string()
	seq, draw, slot, issued := r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	t.Epoch = r.uvarint()
	if r.bad || len(r.b) != 0 || !surge.ValidID(t.SaleID) || !surge.ValidID(t.UserID) ||
		seq < 1 || seq > 1<<62 || slot > 1<<62 || issued > 1<<62 {
		return ticket{}, errMalformed
	}
	t.Seq, t.Draw, t.Slot = int64(seq), draw, int64(slot)-1
	t.Issued = time.UnixMilli(int64(issued)).UTC()
	return t, nil
}

// reader consumes a payload; bad sticks once anything is missing.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
