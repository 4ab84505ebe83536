package redis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/surgehq/surge"
)

// metaInt reads one field of an HMGET of a meta hash; an error if it is
// missing (the state is).
func metaInt(v any) (int64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, ErrNoState
	}
	return strconv.ParseInt(str, 10, 64)
}

func parseDecision(code string) (Decision, error) {
	var d Decision
	if code == "" {
		return d, errors.New("empty code")
	}
	switch code[0] {
	case '+':
		d.Code = surge.CodeReserved
	case 'S':
		d.Code = surge.CodeSoldOut
		d.Remaining, _ = strconv.ParseInt(code[1:], 10, 64)
	case 'L':
		d.Code = surge.CodeLimitReached
	case 'M':
		d.Code = surge.CodeIdempotencyMismatch
	case 'N':
		d.Code = surge.CodeNotStarted
	case 'E':
		d.Code = surge.CodeEnded
	case 'P':
		d.Code = surge.CodePaused
	case 'R':
		o, err := parseRecord(code[1:])
		if err != nil {
			return d, fmt.Errorf("replay record: %w", err)
		}
		d.Code, d.Replay = surge.CodeReserved, o
	default:
		return d, fmt.Errorf("unknown code %q", code)
	}
	return d, nil
}

// record is an idempotency record: order id, quantity, created and expiry
// in Unix milliseconds.
func record(o surge.Order) string {
	return o.ID + "|" + strconv.FormatInt(o.Quantity, 10) + "|" +
		strconv.FormatInt(o.CreatedAt.UnixMilli(), 10) + "|" + strconv.FormatInt(o.ExpiresAt.UnixMilli(), 10)
}

func parseRecord(s string) (surge.Order, error) {
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return surge.Order{}, fmt.Errorf("malformed %q", s)
	}
	q, err1 := strconv.ParseInt(f[1], 10, 64)
	c, err2 := strconv.ParseInt(f[2], 10, 64)
	e, err3 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return surge.Order{}, fmt.Errorf("malformed %q: %w", s, err)
	}
	return surge.Order{ID: f[0], Quantity: q, Status: surge.OrderReserved,
		CreatedAt: time.UnixMilli(c).UTC(), ExpiresAt: time.UnixMilli(e).UTC()}, nil
}
