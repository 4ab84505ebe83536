package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/surgehq/surge"
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
// anything this version did not write.
func parseWaitingRoom(s string) (*surge.WaitingRoom, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var wr surge.WaitingRoom
	if err := dec.Decode(&wr); err != nil {
		return nil, fmt.Errorf("bad stored waiting room %q: %w", s, err)
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
