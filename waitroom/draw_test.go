package waitroom_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
	"github.com/surgehq/surge/waitroom"
)

// TestLotteryTicketHidesDraw: a lottery's order is its entrants' random
// draws, made as they join and published at the start (position null until
// then). A ticket is signed, not encrypted: its holder can read every field
// of it. It must not carry the draw, or a buyer (a bot with many accounts,
// a reseller of accounts) could tell before the draw which places come
// first, and compare them. Both backends, the real Redis for cluster mode.
func TestLotteryTicketHidesDraw(t *testing.T) {
	ctx := context.Background()
	rc, err := redis.Dial(ctx, servicetest.RedisURL())
	if err != nil {
		t.Fatalf("redis (run scripts/services.sh): %v", err)
	}
	t.Cleanup(func() { rc.Close() })
	start := time.Date(2031, 3, 14, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		backend waitroom.Backend
	}{
		{"memory", waitroom.NewMemory(0)},
		{"redis", redis.NewQueues(rc, servicetest.Namespace(t), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start.Add(-time.Minute)
			room, err := waitroom.New(waitroom.Config{Secret: []byte("0123456789abcdef0123456789abcdef"),
				Backend: tc.backend, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			sale := &surge.Sale{ID: "lot", Name: "lot", Stock: 10, PerUserLimit: 1, StartsAt: start, HoldSeconds: 60,
				WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueLottery, TicketSeconds: 60}}
			type issued struct{ user, what, ticket string }
			var tickets []issued
			const buyers = 8
			for i := range buyers {
				u := fmt.Sprintf("u%d", i)
				st, _, err := room.Join(ctx, sale, u)
				if err != nil {
					t.Fatal(err)
				}
				again, err := room.Status(ctx, sale, st.Ticket)
				if err != nil {
					t.Fatal(err)
				}
				pl, err := room.Place(ctx, sale, u)
				if err != nil {
					t.Fatal(err)
				}
				tickets = append(tickets, issued{u, "join", st.Ticket}, issued{u, "status", again.Ticket}, issued{u, "place", pl.Ticket})
			}
			now = start // the draw
			for i := range buyers {
				st, err := room.Status(ctx, sale, tickets[3*i].ticket)
				if err != nil {
					t.Fatal(err)
				}
				tickets = append(tickets, issued{st.UserID, "status after the draw", st.Ticket})
			}
			for _, tk := range tickets {
				user, draw := readTicket(t, tk.ticket)
				if user != tk.user {
					t.Fatalf("the ticket of %s reads as %s's", tk.user, user)
				}
				if draw != 0 {
					t.Errorf("%s's ticket (%s) carries their lottery draw %d, readable by its holder: "+
						"where the place comes is known before the draw", tk.user, tk.what, draw)
				}
			}
		})
	}
}

// readTicket reads a ticket as its holder can, without the key: base64url,
// then version, sale id and user id (length-prefixed), seq and draw
// (unsigned varints).
func readTicket(t *testing.T, text string) (user string, draw uint64) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(b) < 1 {
		t.Fatalf("ticket %q: %v", text, err)
	}
	b = b[1:]
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			t.Fatalf("ticket %q: short", text)
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := next()
		if n > uint64(len(b)) {
			t.Fatalf("ticket %q: short", text)
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	str() // sale
	user = str()
	next() // seq
	return user, next()
}
