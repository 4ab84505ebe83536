package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// The waiting-room flow on a real clock: buyers join before the start,
// cannot buy before their admission, wait for it on the event stream (or
// by polling when the server refuses another stream), then buy with the
// ticket.
func TestWaitingRoom(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Admitted two a second from 4 s on: buyer i at start + i/2 s. The
	// margin is for a loaded machine: the checks before admission must
	// run before it.
	start := time.Now().Add(4 * time.Second)
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("room"), Name: new("Room"), Stock: new(int64(10)),
		StartsAt: new(api.FormatTime(start)), WaitingRoom: &api.NewWaitingRoom{
			AdmitPerSecond: new(int64(2)), Policy: new("fifo"), TicketSeconds: new(int64(60))}}); err != nil {
		t.Fatal(err)
	}
	buyers := []*client.Client{admin.AsBuyer(buyerJWT(t, "b0")), admin.AsUser("b1"), admin.AsUser("b2"), admin.AsBuyer(buyerJWT(t, "b3"))}
	places := make([]api.Queue, len(buyers))
	for i, b := range buyers {
		q, err := b.JoinQueue(ctx, "room")
		if err != nil || q.Status != client.QueueWaiting || q.Position == nil || *q.Position != int64(i+1) || q.Ticket == "" {
			t.Fatalf("buyer %d joined: %+v, %v", i, q, err)
		}
		places[i] = q
	}
	if again, err := buyers[1].JoinQueue(ctx, "room"); err != nil || *again.Position != 2 {
		t.Errorf("joining again: %+v, %v; want the same place", again, err)
	}

	// Before admission: 403 not_admitted, with or without the ticket
	// (buyer 3, the last admitted).
	for _, ticket := range []string{"", places[3].Ticket} {
		_, err := buyers[3].Purchase(ctx, "room", client.PurchaseOptions{Ticket: ticket})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != string(surge.CodeNotAdmitted) {
			t.Errorf("purchase before admission (ticket %v): %v, want 403 not_admitted", ticket != "", err)
		}
	}

	// Buyer 2 already holds the two streams a buyer may: its wait polls.
	held := make(chan api.Queue, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			first := true
			err := buyers[2].WatchQueue(ctx, "room", places[2].Ticket, func(q api.Queue) error {
				if first {
					held <- q
					first = false
				}
				return nil
			})
			if err != nil {
				t.Errorf("held stream: %v", err)
			}
		})
	}
	for range 2 {
		if q := <-held; q.Status != client.QueueWaiting || *q.Position != 3 {
			t.Errorf("held stream's first event %+v", q)
		}
	}

	orders := make([]string, len(buyers))
	errs := make([]error, len(buyers))
	for i, b := range buyers {
		wg.Go(func() {
			var q api.Queue
			var err error
			if i == 3 {
				q, err = b.Admit(ctx, "room") // joins again, then waits
			} else {
				q, err = b.WaitAdmitted(ctx, places[i])
			}
			if err != nil {
				errs[i] = err
				return
			}
			if q.Status != client.QueueAdmitted || !q.Admitted || q.AdmittedUntil == nil {
				t.Errorf("buyer %d: WaitAdmitted returned %+v", i, q)
			}
			p, err := b.Purchase(ctx, "room", client.PurchaseOptions{Ticket: q.Ticket})
			errs[i], orders[i] = err, p.Order.ID
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("buyer %d: %v", i, err)
		}
	}
	if time.Now().Before(start.Add(1500 * time.Millisecond)) {
		t.Errorf("every buyer bought by %v, before the last one's admission at start + 1.5 s", time.Now())
	}
	if s.count("GET /v1/sales/room/queue/events") < 6 || s.count("GET /v1/sales/room/queue") == 0 {
		t.Errorf("%d streams and %d polls; want a stream for each wait and the held ones, and polls for buyer 2's",
			s.count("GET /v1/sales/room/queue/events"), s.count("GET /v1/sales/room/queue"))
	}
	if got := exported(t, admin, "room"); len(got) != len(buyers) {
		t.Errorf("export: %d orders, want %d", len(got), len(buyers))
	}

	// Errors of the queue endpoints.
	if _, err := buyers[0].QueueStatus(ctx, "room", "forged"); !surge.HasCode(err, surge.CodeInvalidTicket) {
		t.Errorf("status with a forged ticket: %v", err)
	}
	if err := buyers[0].WatchQueue(ctx, "room", "forged", func(api.Queue) error { return nil }); !surge.HasCode(err, surge.CodeInvalidTicket) {
		t.Errorf("stream with a forged ticket: %v", err)
	}
	createSale(t, admin, "plain", 1, 1)
	if _, err := buyers[0].JoinQueue(ctx, "plain"); !surge.HasCode(err, surge.CodeNoWaitingRoom) {
		t.Errorf("join a sale without a waiting room: %v", err)
	}
	if _, err := admin.JoinQueue(ctx, "room"); !errors.Is(err, client.ErrNoBuyer) {
		t.Errorf("join without a buyer: %v", err)
	}
}

// An admission that has run out is ErrAdmissionExpired, and its ticket
// buys nothing.
func TestWaitingRoomExpired(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("brief"), Name: new("Brief"), Stock: new(int64(10)),
		WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(int64(1000)), Policy: new("fifo"), TicketSeconds: new(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	b := admin.AsUser("late")
	q, err := b.JoinQueue(ctx, "brief")
	if err != nil {
		t.Fatal(err)
	}
	for q.Status != client.QueueExpired { // a one-second admission
		if err := ctx.Err(); err != nil {
			t.Fatalf("still %s: %v", q.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
		if q, err = b.QueueStatus(ctx, "brief", q.Ticket); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.WaitAdmitted(ctx, q); !errors.Is(err, client.ErrAdmissionExpired) {
		t.Errorf("WaitAdmitted: %v, want ErrAdmissionExpired", err)
	}
	if _, err := b.Admit(ctx, "brief"); !errors.Is(err, client.ErrAdmissionExpired) {
		t.Errorf("Admit (joining again): %v, want ErrAdmissionExpired", err)
	}
	if _, err := b.Purchase(ctx, "brief", client.PurchaseOptions{Ticket: q.Ticket}); !surge.HasCode(err, surge.CodeNotAdmitted) {
		t.Errorf("purchase with an expired ticket: %v", err)
	}
}

// A sale that ends before a buyer's turn comes expires the buyer's place
// without ever admitting it: WaitAdmitted said "the admission to the
// waiting room has expired", an admission the buyer never had, so a
// buyer could not tell a missed turn (it was too slow to buy) from a
// sale over before its turn. The error says the sale ended first, and is
// ErrAdmissionExpired all the same (the place is over for good).
func TestWaitAdmittedSaleEndedBeforeTurn(t *testing.T) {
	s := newServer(t, serverOptions{})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	end := time.Now().Add(2 * time.Second)
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("short"), Name: new("Short"), Stock: new(int64(100)),
		EndsAt: new(api.FormatTime(end)), WaitingRoom: &api.NewWaitingRoom{AdmitPerSecond: new(int64(1)),
			Policy: new("fifo"), TicketSeconds: new(int64(60))}}); err != nil {
		t.Fatal(err)
	}
	// One admitted a second: the sixth's turn comes 5 s in, after the end.
	var first, q api.Queue
	for _, u := range []string{"a", "b", "c", "d", "e", "f"} {
		var err error
		if q, err = admin.AsUser(u).JoinQueue(ctx, "short"); err != nil {
			t.Fatal(err)
		}
		if u == "a" {
			first = q
		}
	}
	_, err := admin.AsUser("f").WaitAdmitted(ctx, q)
	if !errors.Is(err, client.ErrAdmissionExpired) {
		t.Fatalf("WaitAdmitted past the sale's end: %v, want ErrAdmissionExpired", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "ended before") || strings.Contains(msg, "admission to the waiting room has expired") {
		t.Errorf("WaitAdmitted for a turn after the sale's end: %q; want it to say the sale ended before the buyer's turn, not that an admission expired", msg)
	}
	// A buyer admitted and then out of time still reads as an expired admission.
	a, err := admin.QueueStatus(ctx, "short", first.Ticket)
	if err != nil || a.Status != client.QueueExpired {
		t.Fatalf("place of the first buyer after the end: %+v, %v", a, err)
	}
	if _, err := admin.AsUser("a").WaitAdmitted(ctx, a); !errors.Is(err, client.ErrAdmissionExpired) || strings.Contains(err.Error(), "ended before") {
		t.Errorf("WaitAdmitted of a buyer admitted before the end: %v, want the admission expired", err)
	}
}
