package http_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge/api"
)

// TestPauseStopsWaitingRoomClock: a pause stops the waiting room's clock.
// The windows of buyers admitted before a pause kept running through it:
// a buyer admitted just before one saw every purchase answer 409 paused
// until the whole window was gone, and had to queue again (for nothing:
// joining again returns the expired place). The queue went on admitting
// into the paused sale too, each window running out unused. Now nothing
// moves while the sale is paused: the admitted keep the time they had
// left, the waiting keep their places and their order, and every ticket
// handed out before the pause buys after it.
func TestPauseStopsWaitingRoomClock(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.roomSale(t, "drop", "fifo") // starts in a minute; 1 buyer a second, 30 s each
	const n = 40
	tickets := make([]string, n)
	for i := range n {
		tickets[i] = e.join(t, "drop", fmt.Sprintf("u%02d", i), http.StatusCreated).Ticket
	}
	status := func(i int) api.Queue {
		t.Helper()
		r := e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(tickets[i]))
		wantStatus(t, r, http.StatusOK)
		return mustQueue(t, r)
	}
	buy := func(i int) response {
		return e.do(t, "POST", "/v1/sales/drop/purchases", "", asUser(t, fmt.Sprintf("u%02d", i)), ticketHeader(tickets[i]))
	}
	steer := func(paused bool) {
		t.Helper()
		wantStatus(t, e.do(t, "PATCH", "/v1/sales/drop", fmt.Sprintf(`{"paused":%t}`, paused), asAdmin()), http.StatusOK)
	}
	shifted := func(at *string, d time.Duration) string {
		t.Helper()
		if at == nil {
			return "null"
		}
		v, err := api.ParseTime(*at)
		if err != nil {
			t.Fatal(err)
		}
		return api.FormatTime(v.Add(d))
	}
	str := func(s *string) string {
		if s == nil {
			return "null"
		}
		return *s
	}

	// u00 is admitted with 20 s left, u01…u10 after it; u11 is next.
	e.clock.Advance(time.Minute + 10*time.Second)
	before := make([]api.Queue, n)
	for i := range n {
		before[i] = status(i)
	}
	if before[0].Status != "admitted" || before[11].Status != "waiting" || pos(before[11]) != 1 {
		t.Fatalf("before the pause: u00 %+v, u11 %+v", before[0], before[11])
	}

	steer(true)
	wantError(t, buy(0), http.StatusConflict, "paused")
	e.clock.Advance(10 * time.Minute) // far past every window of the line
	for i := range n {
		got := status(i)
		if got.Status != before[i].Status || pos(got) != pos(before[i]) || got.EstimatedWaitSeconds != before[i].EstimatedWaitSeconds {
			t.Fatalf("u%02d 10 minutes into the pause: %s, position %d, wait %d s; before it: %s, position %d, wait %d s (the clock ran on)",
				i, got.Status, pos(got), got.EstimatedWaitSeconds, before[i].Status, pos(before[i]), before[i].EstimatedWaitSeconds)
		}
	}

	steer(false)
	for i := range n {
		got := status(i)
		if got.Status != before[i].Status || pos(got) != pos(before[i]) ||
			str(got.AdmittedAt) != shifted(before[i].AdmittedAt, 10*time.Minute) ||
			str(got.AdmittedUntil) != shifted(before[i].AdmittedUntil, 10*time.Minute) {
			t.Fatalf("u%02d after the pause: %s, position %d, window %s to %s; want %s, position %d, window %s to %s (moved by the pause)",
				i, got.Status, pos(got), str(got.AdmittedAt), str(got.AdmittedUntil), before[i].Status, pos(before[i]),
				shifted(before[i].AdmittedAt, 10*time.Minute), shifted(before[i].AdmittedUntil, 10*time.Minute))
		}
	}
	// The ticket of before the pause buys, in what was left of its window,
	// and the line moves on from where it stopped, in its order.
	wantStatus(t, buy(0), http.StatusCreated)
	if q := status(11); q.Status != "waiting" || pos(q) != 1 {
		t.Fatalf("u11 right after the pause: %+v, want waiting at position 1", q)
	}
	e.clock.Advance(time.Second)
	wantStatus(t, buy(11), http.StatusCreated)
	if q := status(12); q.Status != "waiting" || pos(q) != 1 {
		t.Fatalf("u12 after u11's turn: %+v, want waiting at position 1", q)
	}
	e.clock.Advance(19 * time.Second) // u01's window, which began a second after u00's, has a second left
	wantStatus(t, buy(1), http.StatusCreated)
}

// TestQueueEventsFollowPause: an event stream opened before a pause
// follows it. The stream read its sale once, when it opened, so it never
// saw the pause: it told a buyer still waiting that their turn had
// expired while the sale was paused, though their place was kept.
func TestQueueEventsFollowPause(t *testing.T) {
	e := newEnv(t, envOptions{noServer: true})
	e.handler.SetStreamTiming(5*time.Millisecond, 50*time.Millisecond)
	ticks := make(chan struct{}, 1)
	e.handler.OnStreamTick(func() {
		select {
		case ticks <- struct{}{}:
		default:
		}
	})
	e.srv = httptest.NewServer(e.handler)
	var sse *sseReader
	// seen waits until the stream has looked at its place since now: the
	// look that ends first may have begun before, the one after it not.
	seen := func() {
		t.Helper()
		select {
		case <-ticks:
		default:
		}
		for range 2 {
			select {
			case <-ticks:
			case <-time.After(10 * time.Second):
				ev, err := sse.next()
				t.Fatalf("the stream stopped looking at its place; its last words: %+v, %v", ev, err)
			}
		}
	}

	e.roomSale(t, "drop", "fifo") // starts in a minute; 1 buyer a second, 30 s each
	for _, u := range []string{"alice", "bob"} {
		e.join(t, "drop", u, http.StatusCreated)
	}
	carol := e.join(t, "drop", "carol", http.StatusCreated)
	e.clock.Advance(time.Minute) // alice admitted, bob next, then carol
	_, sse = openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(carol.Ticket))
	if ev, err := sse.next(); err != nil || ev.name != "position" || !strings.Contains(ev.data, `"position":2`) {
		t.Fatalf("first event: %+v, %v", ev, err)
	}

	wantStatus(t, e.do(t, "PATCH", "/v1/sales/drop", `{"paused":true}`, asAdmin()), http.StatusOK)
	seen()
	e.clock.Advance(time.Hour) // past carol's turn and window, had the clock run on
	seen()
	wantStatus(t, e.do(t, "PATCH", "/v1/sales/drop", `{"paused":false}`, asAdmin()), http.StatusOK)
	e.clock.Advance(time.Second) // bob's turn: carol is next
	if ev, err := sse.next(); err != nil || ev.name != "position" || !strings.Contains(ev.data, `"position":1`) {
		t.Fatalf("after the pause and a second: %+v, %v; want carol's position 1", ev, err)
	}
	e.clock.Advance(time.Second)
	if ev, err := sse.next(); err != nil || ev.name != "admitted" {
		t.Fatalf("at carol's turn: %+v, %v; want admitted", ev, err)
	}
}

// TestQueueEventsIdleWhilePaused: a stream looks at its place once a tick
// while its sale is paused, however close its turn was when the pause
// began. The stream slept until its estimated admission when that came
// before the next tick; the pause stops the waiting room's clock, so the
// wait never ran down, and the stream of a buyer paused a millisecond
// from their turn read the sale and its place about a thousand times a
// second for as long as the pause lasted (in cluster mode, two Redis
// calls each time).
func TestQueueEventsIdleWhilePaused(t *testing.T) {
	e := newEnv(t, envOptions{noServer: true})
	const tick = 200 * time.Millisecond
	e.handler.SetStreamTiming(tick, time.Minute)
	var looks atomic.Int64
	e.handler.OnStreamTick(func() { looks.Add(1) })
	e.srv = httptest.NewServer(e.handler)

	e.roomSale(t, "drop", "fifo") // starts in a minute; 1 buyer a second, 30 s each
	e.join(t, "drop", "alice", http.StatusCreated)
	bob := e.join(t, "drop", "bob", http.StatusCreated)
	e.clock.Advance(time.Minute + 999*time.Millisecond) // bob's turn comes in a millisecond
	wantStatus(t, e.do(t, "PATCH", "/v1/sales/drop", `{"paused":true}`, asAdmin()), http.StatusOK)

	_, sse := openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(bob.Ticket))
	if ev, err := sse.next(); err != nil || ev.name != "position" || !strings.Contains(ev.data, `"position":1`) {
		t.Fatalf("first event: %+v, %v", ev, err)
	}
	// A second holds at most 1 s / tick looks (5) however slow the
	// machine; a stream that does not wait for its tick takes hundreds.
	const window = time.Second
	from := looks.Load()
	time.Sleep(window)
	if n := looks.Load() - from; n > 2*int64(window/tick) {
		t.Fatalf("the paused stream looked at its place %d times in %v, want at most one look a tick (%v)", n, window, tick)
	}
}
