// Package roomjson reads a sale's waiting room as the stores keep it (the
// JSON of surge.WaitingRoom: a TEXT column in the embedded store, a jsonb
// one in PostgreSQL), strictly: both stores refuse the same rooms.
package roomjson

import (
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"

	"github.com/surgehq/surge"
)

// Parse reads a stored waiting room, refusing anything Surge never writes:
// exactly one object of the three fields, each once and named as written,
// and values the rules of a new sale allow (surge.WaitingRoom.Check). Read
// leniently (encoding/json: a field named twice counted by its last value,
// names in any case, data after the object, a missing field as zero), a
// room of an admission rate of zero was served, and its queue's first
// join divided by zero. The error is plain: each store says it is damage
// in its own terms.
func Parse(b []byte) (surge.WaitingRoom, error) {
	var raw struct {
		AdmitPerSecond *int64  `json:"admit_per_second"`
		Policy         *string `json:"order"`
		TicketSeconds  *int64  `json:"ticket_seconds"`
	}
	if err := json.Unmarshal(b, &raw, json.RejectUnknownMembers(true)); err != nil {
		return surge.WaitingRoom{}, fmt.Errorf("bad stored waiting room %q: %w", b, err)
	}
	if raw.AdmitPerSecond == nil || raw.Policy == nil || raw.TicketSeconds == nil {
		return surge.WaitingRoom{}, fmt.Errorf("bad stored waiting room %q: %w", b, errMissing)
	}
	wr := surge.WaitingRoom{AdmitPerSecond: *raw.AdmitPerSecond, Policy: *raw.Policy, TicketSeconds: *raw.TicketSeconds}
	if err := wr.Check(); err != nil {
		// %v: the rule's invalid_request is the API's answer to an
		// operator, not a code of this damage.
		return surge.WaitingRoom{}, fmt.Errorf("bad stored waiting room %q: %v", b, err)
	}
	return wr, nil
}

var errMissing = errors.New("admit_per_second, order and ticket_seconds are all required")
