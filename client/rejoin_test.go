package client_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
)

// An embedded server restarted while its buyers wait has lost its
// waiting room's places (they live in its memory) and refuses their
// tickets with 403 invalid_ticket, "join again". Admit, which joins for
// its caller, ended with that refusal; it now joins again, once the
// ticket is refused, and waits with the new place, whose ticket buys.
func TestAdmitJoinsAgainAfterARestart(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, serverOptions{dir: dir})
	addr := strings.TrimPrefix(s.url, "http://")
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := admin.CreateSale(ctx, api.NewSale{ID: new("room"), Name: new("Room"), Stock: new(int64(10)),
		StartsAt: new(api.FormatTime(time.Now().Add(3 * time.Second))), WaitingRoom: &api.NewWaitingRoom{
			AdmitPerSecond: new(int64(1)), Policy: new("fifo"), TicketSeconds: new(int64(60))}}); err != nil {
		t.Fatal(err)
	}
	ann := admin.AsUser("ann")
	type result struct {
		q   api.Queue
		err error
	}
	done := make(chan result, 1)
	go func() {
		q, err := ann.Admit(ctx, "room")
		done <- result{q, err}
	}()
	// The restart, once ann follows her place on the stream.
	for s.count("GET /v1/sales/room/queue/events") == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	s.stop()
	s2 := newServer(t, serverOptions{dir: dir, addr: addr})
	r := <-done
	if r.err != nil || r.q.Status != client.QueueAdmitted {
		t.Fatalf("Admit across a restart of the embedded server: %s, %v; want it to join again and be admitted", r.q.Status, r.err)
	}
	if n := s2.count("POST /v1/sales/room/queue"); n != 1 {
		t.Errorf("%d joins after the restart; want 1", n)
	}
	if _, err := ann.Purchase(ctx, "room", client.PurchaseOptions{Ticket: r.q.Ticket}); err != nil {
		t.Errorf("purchase with the admission's ticket: %v", err)
	}
}

// A server that refuses every ticket it issued (nodes behind one address
// not sharing the waiting-room secret) would have Admit join again in a
// loop: it joins again once, and returns the refusal of a ticket refused
// before any read of it.
func TestAdmitJoinsAgainOnlyOnceForATicketNeverAccepted(t *testing.T) {
	f := &fault{plan: refusals(10, http.StatusForbidden, "invalid_ticket", ""),
		match: func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/queue")
		}}
	s := newServer(t, serverOptions{wrap: f.wrap})
	admin := client.New(s.url, token)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ann, _ := annInRoom(ctx, t, admin, time.Now().Add(time.Minute), 60)
	_, err := ann.Admit(ctx, "room")
	if !surge.HasCode(err, surge.CodeInvalidTicket) || ctx.Err() != nil {
		t.Errorf("Admit, every ticket refused: %v; want 403 invalid_ticket", err)
	}
	// annInRoom's join, then Admit's and the one again.
	if n := s.count("POST /v1/sales/room/queue"); n != 3 {
		t.Errorf("%d joins; want Admit's 2: one again after the first refusal, none after the second", n)
	}
}
