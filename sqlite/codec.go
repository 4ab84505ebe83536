package sqlite

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/roomjson"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

const orderColumns = `id, sale_id, user_id, quantity, status, idempotency_key, created_at, expires_at`

type scanner interface{ Scan(...any) error }

func scanOrder(sc scanner) (surge.Order, error) {
	var (
		o                surge.Order
		status           string
		key              sql.NullString
		created, expires string
	)
	if err := sc.Scan(&o.ID, &o.SaleID, &o.UserID, &o.Quantity, &status, &key, &created, &expires); err != nil {
		return o, fmt.Errorf("sqlite: scan order: %w", err)
	}
	o.Status = surge.OrderStatus(status)
	o.IdempotencyKey = key.String
	var err error
	if o.CreatedAt, err = parseTime(created); err != nil {
		return o, err
	}
	if o.ExpiresAt, err = parseTime(expires); err != nil {
		return o, err
	}
	return o, nil
}

func formatTime(t time.Time) string { return surge.FormatTime(t) }

// parseWaitingRoom reads the stored JSON of a waiting room, refusing
// anything this version did not write as damage (roomjson.Parse).
func parseWaitingRoom(s string) (*surge.WaitingRoom, error) {
	wr, err := roomjson.Parse([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return &wr, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// parseStoredTime is parseTime, reading the one form Surge writes
// (surge.TimeLayout in UTC: "2006-01-02T15:04:05.000Z") without
// time.Parse's general machinery, which was a tenth of the cost of loading
// a million orders. Anything else, valid or not, goes to parseTime; the
// checks here are as strict as time.Parse's, so both give the same instant
// or the same refusal.
func parseStoredTime(s string) (time.Time, error) {
	if len(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return parseTime(s)
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	milli, ok7 := digits(s[20:23])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return parseTime(s)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, milli*int(time.Millisecond), time.UTC), nil
}

// digits reads s, ASCII digits only.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
