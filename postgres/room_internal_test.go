package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestRefuseDamagedWaitingRoom: a sale whose stored waiting room Surge
// never writes (a hand edit of the jsonb) is refused as damage, naming the
// sale, by every read of it, as the embedded store refuses it; read
// leniently, an admission rate of zero was served, and every join of the
// sale's queue panicked (integer divide by zero) into a 500.
func TestRefuseDamagedWaitingRoom(t *testing.T) {
	for _, tc := range []struct {
		name, room string
		ok         bool
	}{
		{"as written", `{"admit_per_second":5,"order":"fifo","ticket_seconds":60}`, true},
		{"admitting no one", `{"admit_per_second":0,"order":"fifo","ticket_seconds":60}`, false},
		{"without a rate", `{"order":"fifo","ticket_seconds":60}`, false},
		{"of an unknown order", `{"admit_per_second":5,"order":"random","ticket_seconds":60}`, false},
		{"without a ticket", `{"admit_per_second":5,"order":"lottery","ticket_seconds":0}`, false},
		{"of a fractional rate", `{"admit_per_second":5.5,"order":"fifo","ticket_seconds":60}`, false},
		{"named in capitals", `{"ADMIT_PER_SECOND":5,"order":"fifo","ticket_seconds":60}`, false},
		{"with a field more", `{"admit_per_second":5,"order":"fifo","ticket_seconds":60,"x":1}`, false},
		{"json null", `null`, false},
		{"an array", `[5,"fifo",60]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, conn := openSchema(t, Options{})
			id, name, stock := "s1", "room", int64(10)
			start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
			sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start,
				WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 9, Policy: surge.QueueLottery, TicketSeconds: 30}}, start)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CreateSale(ctx, sl, 1, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `UPDATE sales SET waiting_room = $1::jsonb WHERE id = 's1'`, tc.room); err != nil {
				t.Fatal(err)
			}
			row, err := db.Sale(ctx, "s1")
			_, lerr := db.Sales(ctx)
			if tc.ok {
				want := surge.WaitingRoom{AdmitPerSecond: 5, Policy: surge.QueueFIFO, TicketSeconds: 60}
				if err != nil || lerr != nil || row.WaitingRoom == nil || *row.WaitingRoom != want {
					t.Fatalf("Sale: %+v, %v; Sales: %v; want room %+v", row.WaitingRoom, err, lerr, want)
				}
				return
			}
			for _, err := range []error{err, lerr} {
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "sale s1: ") {
					var got any = err
					if err == nil {
						got = *row.WaitingRoom
					}
					t.Fatalf("stored room %s read as %v; want ErrDamaged naming sale s1", tc.room, got)
				}
			}
		})
	}
}
