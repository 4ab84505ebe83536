package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	surgehttp "github.com/surgehq/surge/http"
	"github.com/surgehq/surge/waitroom"
)

func parseQueue(b []byte) (api.Queue, error) {
	var q api.Queue
	if err := decodeStrict(b, &q); err != nil {
		return q, fmt.Errorf("queue answer %s: %v", b, err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	if len(raw) != 9 {
		return q, fmt.Errorf("queue answer keys = %v", sortedKeys(raw))
	}
	if q.Ticket == "" || len(q.Ticket) > waitroom.MaxTicketLen || q.EstimatedWaitSeconds < 0 ||
		q.Admitted != (q.Status == "admitted") || !slices.Contains([]string{"waiting", "admitted", "expired"}, q.Status) ||
		(q.AdmittedAt == nil) != (q.AdmittedUntil == nil) {
		return q, fmt.Errorf("queue answer out of the contract: %s", b)
	}
	return q, nil
}

func mustQueue(tb testing.TB, r response) api.Queue {
	tb.Helper()
	checkJSONType(tb, r)
	q, err := parseQueue(r.body)
	if err != nil {
		tb.Fatalf("%v: %v", r, err)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return q
}

func ticketHeader(tk string) opt { return header(surgehttp.TicketHeader, tk) }

func pos(q api.Queue) int64 {
	if q.Position == nil {
		return -1
	}
	return *q.Position
}

// roomSale creates a sale starting a minute after the test clock, with a
// waiting room admitting one buyer per second for 30 s each.
func (e *env) roomSale(tb testing.TB, id, order string) api.Sale {
	tb.Helper()
	return e.createSale(tb, fmt.Sprintf(`{"id":%q,"name":"Drop","stock":100,"starts_at":%q,
		"waiting_room":{"admit_per_second":1,"order":%q,"ticket_seconds":30}}`, id, ts(time.Minute), order))
}

func (e *env) join(tb testing.TB, saleID, user string, status int) api.Queue {
	tb.Helper()
	r := e.do(tb, "POST", "/v1/sales/"+saleID+"/queue", "", asUser(tb, user))
	wantStatus(tb, r, status)
	return mustQueue(tb, r)
}

func TestCreateSaleWithWaitingRoom(t *testing.T) {
	e := newEnv(t, envOptions{})
	s := e.createSale(t, `{"id":"wr","name":"Drop","stock":5,"waiting_room":{"admit_per_second":20,"order":"lottery","ticket_seconds":120}}`)
	want := &api.WaitingRoom{AdmitPerSecond: 20, Policy: "lottery", TicketSeconds: 120}
	if s.WaitingRoom == nil || *s.WaitingRoom != *want {
		t.Fatalf("waiting_room = %+v, want %+v", s.WaitingRoom, want)
	}
	if got := e.sale(t, "wr"); got.WaitingRoom == nil || *got.WaitingRoom != *want {
		t.Errorf("GET: waiting_room = %+v", got.WaitingRoom)
	}
	// Without one, the key is absent (parseSale checks the exact keys),
	// and null is the same as absent.
	plain := e.createSale(t, `{"id":"plain","name":"Plain","stock":5}`)
	null := e.createSale(t, `{"id":"null","name":"Null","stock":5,"waiting_room":null}`)
	if plain.WaitingRoom != nil || null.WaitingRoom != nil {
		t.Errorf("waiting rooms out of nothing: %+v, %+v", plain.WaitingRoom, null.WaitingRoom)
	}
	r := e.do(t, "GET", "/v1/sales/plain", "")
	if strings.Contains(string(r.body), "waiting_room") {
		t.Errorf("a sale without a waiting room shows one: %s", r.body)
	}
	// Oldest first, in the order they were created (one instant of the
	// test's clock: the engine gives each a later creation time): wr,
	// plain, null.
	if list := e.list(t); len(list) != 3 || list[0].WaitingRoom == nil || list[1].WaitingRoom != nil || list[2].WaitingRoom != nil {
		t.Errorf("list: %+v", list)
	}
}

func TestCreateSaleWaitingRoomRejected(t *testing.T) {
	e := newEnv(t, envOptions{})
	room := func(inner string) string { return `{"name":"x","stock":1,"waiting_room":` + inner + `}` }
	for _, c := range []struct{ name, body, msg string }{
		{"missing rate", room(`{"order":"fifo","ticket_seconds":60}`), "waiting_room.admit_per_second is required"},
		{"missing order", room(`{"admit_per_second":1,"ticket_seconds":60}`), "waiting_room.order is required"},
		{"missing ticket", room(`{"admit_per_second":1,"order":"fifo"}`), "waiting_room.ticket_seconds is required"},
		{"empty", room(`{}`), "waiting_room.admit_per_second is required"},
		{"zero rate", room(`{"admit_per_second":0,"order":"fifo","ticket_seconds":60}`), "waiting_room.admit_per_second must be between 1 and 1000000"},
		{"rate too high", room(`{"admit_per_second":1000001,"order":"fifo","ticket_seconds":60}`), "between 1 and 1000000"},
		{"bad order", room(`{"admit_per_second":1,"order":"random","ticket_seconds":60}`), `waiting_room.order must be "fifo" or "lottery"`},
		{"order case", room(`{"admit_per_second":1,"order":"FIFO","ticket_seconds":60}`), `waiting_room.order must be "fifo" or "lottery"`},
		{"ticket over a day", room(`{"admit_per_second":1,"order":"fifo","ticket_seconds":86401}`), "waiting_room.ticket_seconds must be between 1 and 86400"},
		{"rate as string", room(`{"admit_per_second":"1","order":"fifo","ticket_seconds":60}`), `field "waiting_room.admit_per_second" must be an integer`},
		{"not an object", room(`true`), `field "waiting_room" must be an object`},
		{"array", room(`[]`), `field "waiting_room" must be an object`},
		{"unknown field", room(`{"admit_per_second":1,"order":"fifo","ticket_seconds":60,"size":9}`), `unknown field "waiting_room.size"`},
		{"case variant", room(`{"Admit_Per_Second":1,"order":"fifo","ticket_seconds":60}`), `did you mean "admit_per_second"?`},
		{"duplicate inside", room(`{"admit_per_second":1,"admit_per_second":9,"order":"fifo","ticket_seconds":60}`), `field "waiting_room.admit_per_second" appears more than once`},
		{"duplicate room", `{"name":"x","stock":1,"waiting_room":null,"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":60}}`, `field "waiting_room" appears more than once`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/sales", c.body, asAdmin())
			wantError(t, r, http.StatusBadRequest, "invalid_request")
			var got apiError
			_ = json.Unmarshal(r.body, &got)
			if !strings.Contains(got.Error.Message, c.msg) {
				t.Errorf("message %q, want it to contain %q", got.Error.Message, c.msg)
			}
		})
	}
	if list := e.list(t); len(list) != 0 {
		t.Errorf("sales created: %+v", list)
	}
}

func TestQueueJoinAndStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.roomSale(t, "drop", "fifo")
	e.createSale(t, `{"id":"plain","name":"Plain","stock":1}`)

	alice := e.join(t, "drop", "alice", http.StatusCreated)
	bob := e.join(t, "drop", "bob", http.StatusCreated)
	if alice.SaleID != "drop" || alice.UserID != "alice" || alice.Status != "waiting" || pos(alice) != 1 ||
		alice.EstimatedWaitSeconds != 60 || *alice.AdmittedAt != ts(time.Minute) || *alice.AdmittedUntil != ts(90*time.Second) {
		t.Errorf("alice: %+v", alice)
	}
	if pos(bob) != 2 || bob.EstimatedWaitSeconds != 61 || *bob.AdmittedAt != ts(61*time.Second) {
		t.Errorf("bob: %+v", bob)
	}
	// Joining again keeps one's place: 200, same position.
	again := e.join(t, "drop", "alice", http.StatusOK)
	if pos(again) != 1 || *again.AdmittedAt != *alice.AdmittedAt {
		t.Errorf("alice again: %+v", again)
	}
	// An empty object is an empty body; anything else is refused.
	r := e.do(t, "POST", "/v1/sales/drop/queue", `{}`, asUser(t, "carol"))
	wantStatus(t, r, http.StatusCreated)
	r = e.do(t, "POST", "/v1/sales/drop/queue", `{"position":1}`, asUser(t, "dave"))
	wantError(t, r, http.StatusBadRequest, "invalid_request")

	// The ticket alone reads the place, now and later.
	r = e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(bob.Ticket))
	wantStatus(t, r, http.StatusOK)
	if got := mustQueue(t, r); got.UserID != "bob" || pos(got) != 2 {
		t.Errorf("bob's status: %+v", got)
	}
	if ra := r.header.Get("Retry-After"); ra != "10" {
		t.Errorf("Retry-After of a long wait = %q, want 10 (a polling hint)", ra)
	}
	e.clock.Advance(time.Minute) // the start: alice is admitted, bob is next
	r = e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(bob.Ticket))
	if got := mustQueue(t, r); pos(got) != 1 || got.EstimatedWaitSeconds != 1 || got.Admitted {
		t.Errorf("bob at the start: %+v", got)
	}
	r = e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(alice.Ticket))
	if got := mustQueue(t, r); !got.Admitted || pos(got) != 0 || got.EstimatedWaitSeconds != 0 {
		t.Errorf("alice at the start: %+v", got)
	}
	e.clock.Advance(30 * time.Second)
	r = e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(alice.Ticket))
	if got := mustQueue(t, r); got.Status != "expired" || got.Admitted {
		t.Errorf("alice after 30 s: %+v", got)
	}

	// Refusals.
	forged, _ := waitroom.New(waitroom.Config{Secret: []byte("not the server's secret, 32 byte")})
	other, _, _ := forged.Join(context.Background(), &surge.Sale{ID: "drop", StartsAt: epoch,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: "fifo", TicketSeconds: 30}}, "alice")
	for _, c := range []struct {
		name, method, path string
		opts               []opt
		status             int
		code               string
	}{
		{"join without identity", "POST", "/v1/sales/drop/queue", nil, 401, "unauthenticated"},
		{"join as admin", "POST", "/v1/sales/drop/queue", []opt{asAdmin()}, 401, "unauthenticated"},
		{"join a sale without a waiting room", "POST", "/v1/sales/plain/queue", []opt{asUser(t, "u")}, 409, "no_waiting_room"},
		{"join an unknown sale", "POST", "/v1/sales/nope/queue", []opt{asUser(t, "u")}, 404, "sale_not_found"},
		{"join an invalid sale id", "POST", "/v1/sales/a.b/queue", []opt{asUser(t, "u")}, 404, "sale_not_found"},
		{"status without a ticket", "GET", "/v1/sales/drop/queue", nil, 403, "invalid_ticket"},
		{"status with a forged ticket", "GET", "/v1/sales/drop/queue", []opt{ticketHeader(other.Ticket)}, 403, "invalid_ticket"},
		{"status with garbage", "GET", "/v1/sales/drop/queue", []opt{ticketHeader("garbage!")}, 403, "invalid_ticket"},
		{"status with two tickets", "GET", "/v1/sales/drop/queue", []opt{ticketHeader(bob.Ticket), ticketHeader(bob.Ticket)}, 403, "invalid_ticket"},
		{"status of a sale without a waiting room", "GET", "/v1/sales/plain/queue", []opt{ticketHeader(bob.Ticket)}, 409, "no_waiting_room"},
		{"events of a sale without a waiting room", "GET", "/v1/sales/plain/queue/events", []opt{ticketHeader(bob.Ticket)}, 409, "no_waiting_room"},
		{"events without a ticket", "GET", "/v1/sales/drop/queue/events", nil, 403, "invalid_ticket"},
		{"wrong method", "DELETE", "/v1/sales/drop/queue", nil, 405, "method_not_allowed"},
		{"wrong method on events", "POST", "/v1/sales/drop/queue/events", nil, 405, "method_not_allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do(t, c.method, c.path, "", c.opts...), c.status, c.code)
		})
	}
	// Another sale's ticket.
	e.roomSale(t, "drop2", "fifo")
	r = e.do(t, "GET", "/v1/sales/drop2/queue", "", ticketHeader(bob.Ticket))
	wantError(t, r, http.StatusForbidden, "invalid_ticket")
	// A queue is closed once the sale ended.
	e.createSale(t, fmt.Sprintf(`{"id":"over","name":"Over","stock":1,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(-time.Hour), ts(-time.Minute)))
	wantError(t, e.do(t, "POST", "/v1/sales/over/queue", "", asUser(t, "u")), http.StatusConflict, "ended")
}

// TestPurchaseWithWaitingRoom: a purchase needs an admitted, current
// ticket of the same buyer and sale; every other case is a 403 saying why.
func TestPurchaseWithWaitingRoom(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.roomSale(t, "drop", "fifo")
	e.roomSale(t, "drop2", "fifo")
	e.createSale(t, `{"id":"plain","name":"Plain","stock":5}`)
	alice := e.join(t, "drop", "alice", http.StatusCreated)
	bob := e.join(t, "drop", "bob", http.StatusCreated)
	aliceElsewhere := e.join(t, "drop2", "alice", http.StatusCreated)
	forger, _ := waitroom.New(waitroom.Config{Secret: []byte("not the server's secret, 32 byte"), Now: e.clock.Now})
	forged, _, _ := forger.Join(context.Background(), &surge.Sale{ID: "drop", StartsAt: epoch,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: "fifo", TicketSeconds: 30}}, "alice")
	before := e.snapshot(t, "drop")

	buy := func(user string, opts ...opt) response {
		return e.do(t, "POST", "/v1/sales/drop/purchases", "", append([]opt{asUser(t, user)}, opts...)...)
	}
	refused := func(name string, r response, msg, retryAfter string) {
		t.Helper()
		wantError(t, r, http.StatusForbidden, "not_admitted")
		var got apiError
		_ = json.Unmarshal(r.body, &got)
		if !strings.Contains(got.Error.Message, msg) {
			t.Errorf("%s: message %q, want it to contain %q", name, got.Error.Message, msg)
		}
		if ra := r.header.Get("Retry-After"); ra != retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", name, ra, retryAfter)
		}
	}
	refused("no ticket", buy("alice"), "join it with POST /v1/sales/drop/queue", "")
	refused("garbage", buy("alice", ticketHeader("garbage")), "not a waiting-room ticket", "")
	refused("forged", buy("alice", ticketHeader(forged.Ticket)), "signature does not verify", "")
	refused("another buyer's", buy("mallory", ticketHeader(alice.Ticket)), "issued to another buyer", "")
	refused("another sale's", buy("alice", ticketHeader(aliceElsewhere.Ticket)), "for sale drop2, not drop", "")
	refused("two tickets", buy("alice", ticketHeader(alice.Ticket), ticketHeader(alice.Ticket)), "send one Waiting-Room-Ticket header", "")
	refused("too early", buy("alice", ticketHeader(alice.Ticket)), "not admitted yet", "60")
	e.wantUnchanged(t, "drop", before)

	e.clock.Advance(time.Minute)
	refused("bob next", buy("bob", ticketHeader(bob.Ticket)), "in about 1 s", "1")
	r := buy("alice", ticketHeader(alice.Ticket), idemKey("a1"))
	wantStatus(t, r, http.StatusCreated)
	if o := mustOrder(t, r); o.UserID != "alice" || o.SaleID != "drop" {
		t.Errorf("order %+v", o)
	}
	e.clock.Advance(time.Second)
	wantStatus(t, buy("bob", ticketHeader(bob.Ticket)), http.StatusCreated)
	e.clock.Advance(30 * time.Second)
	// Alice's admission (start to start+30s) is over: a new purchase needs
	// a current ticket; the replay of her key still answers her order
	// (TestReplayAfterTurn).
	refused("expired", buy("alice", ticketHeader(alice.Ticket), idemKey("a2")), "expired", "")
	refused("expired, no key", buy("alice", ticketHeader(alice.Ticket)), "expired", "")
	if r := buy("alice", ticketHeader(alice.Ticket), idemKey("a1")); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the replay after the turn: %s; want 201, replayed", r)
	}

	// A sale without a waiting room ignores the header.
	r = e.do(t, "POST", "/v1/sales/plain/purchases", "", asUser(t, "alice"), ticketHeader("whatever"))
	wantStatus(t, r, http.StatusCreated)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, data string }

// sseReader reads events (and counts comments) from a stream.
type sseReader struct {
	sc       *bufio.Scanner
	comments int
	retry    string
}

func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "retry: "):
			s.retry = strings.TrimPrefix(line, "retry: ")
		default:
			return ev, fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := s.sc.Err(); err != nil {
		return ev, err
	}
	return ev, io.EOF
}

// openStream opens an event stream through a server with short timeouts:
// the stream must outlive them.
func openStream(t *testing.T, e *env, path string, opts ...opt) (*http.Response, *sseReader) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, &sseReader{sc: bufio.NewScanner(resp.Body)}
}

// streamEnv serves the API with fast stream ticks (and, with
// shortTimeouts, read and write timeouts far shorter than the streams, as
// surge serve's are).
func streamEnv(t *testing.T, maxStreams int) *env {
	return streamEnvOptions(t, envOptions{maxQueueStreams: maxStreams})
}

func streamEnvOptions(t *testing.T, opt envOptions) *env {
	opt.noServer = true
	e := newEnv(t, opt)
	e.handler.SetStreamTiming(5*time.Millisecond, 50*time.Millisecond)
	srv := httptest.NewUnstartedServer(e.handler)
	if opt.shortTimeouts {
		srv.Config.ReadTimeout = 100 * time.Millisecond
		srv.Config.WriteTimeout = 100 * time.Millisecond
	}
	srv.Start()
	e.srv = srv
	return e
}

func TestQueueEvents(t *testing.T) {
	e := streamEnvOptions(t, envOptions{shortTimeouts: true})
	e.roomSale(t, "drop", "fifo")
	e.join(t, "drop", "alice", http.StatusCreated)
	bob := e.join(t, "drop", "bob", http.StatusCreated)

	resp, sse := openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(bob.Ticket))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream answer: %d %v", resp.StatusCode, resp.Header)
	}
	ev, err := sse.next()
	if err != nil || ev.name != "position" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	if q, err := parseQueue([]byte(ev.data)); err != nil || pos(q) != 2 || q.UserID != "bob" {
		t.Fatalf("first position: %+v, %v", q, err)
	}
	if sse.retry == "" {
		t.Error("no retry hint")
	}
	// Idle past the server's read and write timeouts: heartbeats keep it.
	time.Sleep(300 * time.Millisecond)
	e.clock.Advance(time.Minute) // alice admitted: bob is next
	ev, err = sse.next()
	if q, _ := parseQueue([]byte(ev.data)); err != nil || ev.name != "position" || pos(q) != 1 {
		t.Fatalf("after the start: %+v, %v", ev, err)
	}
	if sse.comments == 0 {
		t.Error("no heartbeat in 300 ms of silence")
	}
	e.clock.Advance(time.Second)
	ev, err = sse.next()
	q, qerr := parseQueue([]byte(ev.data))
	if err != nil || qerr != nil || ev.name != "admitted" || !q.Admitted || pos(q) != 0 {
		t.Fatalf("admission: %+v, %v, %v", ev, err, qerr)
	}
	// The admitted event's ticket buys.
	wantStatus(t, e.do(t, "POST", "/v1/sales/drop/purchases", "", asUser(t, "bob"), ticketHeader(q.Ticket)), http.StatusCreated)
	if ev, err := sse.next(); err != io.EOF {
		t.Fatalf("the stream goes on after admission: %+v, %v", ev, err)
	}

	// Accept: text/event-stream on the status path, and the ticket as a
	// query parameter (EventSource cannot send headers): an expired
	// admission is one event, then the end.
	e.clock.Advance(time.Hour)
	_, sse = openStream(t, e, "/v1/sales/drop/queue/events?ticket="+url.QueryEscape(bob.Ticket))
	if ev, err := sse.next(); err != nil || ev.name != "expired" {
		t.Fatalf("expired: %+v, %v", ev, err)
	}
	if _, err := sse.next(); err != io.EOF {
		t.Fatalf("the stream goes on after expiry: %v", err)
	}
	_, sse = openStream(t, e, "/v1/sales/drop/queue", ticketHeader(bob.Ticket), header("Accept", "text/event-stream"))
	if ev, err := sse.next(); err != nil || ev.name != "expired" {
		t.Fatalf("Accept: text/event-stream: %+v, %v", ev, err)
	}
}

func TestQueueEventsLottery(t *testing.T) {
	e := streamEnv(t, 0)
	e.roomSale(t, "lot", "lottery")
	carol := e.join(t, "lot", "carol", http.StatusCreated)
	if carol.Position != nil || carol.AdmittedAt != nil || carol.EstimatedWaitSeconds != 60 {
		t.Fatalf("before the draw: %+v", carol)
	}
	_, sse := openStream(t, e, "/v1/sales/lot/queue/events", ticketHeader(carol.Ticket))
	if ev, err := sse.next(); err != nil || ev.name != "position" || !strings.Contains(ev.data, `"position":null`) {
		t.Fatalf("before the draw: %+v, %v", ev, err)
	}
	e.clock.Advance(time.Minute) // the draw: carol is alone, so first
	if ev, err := sse.next(); err != nil || ev.name != "admitted" {
		t.Fatalf("after the draw: %+v, %v", ev, err)
	}
}

func TestQueueStreamsAreBounded(t *testing.T) {
	e := streamEnv(t, 1)
	e.roomSale(t, "drop", "fifo")
	a := e.join(t, "drop", "a", http.StatusCreated)
	_, first := openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(a.Ticket))
	if _, err := first.next(); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "GET", "/v1/sales/drop/queue/events", "", ticketHeader(a.Ticket))
	wantError(t, r, http.StatusServiceUnavailable, "overloaded")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// Shutdown ends the open stream and refuses new ones.
	e.handler.CloseStreams()
	if _, err := first.next(); err != io.EOF {
		t.Fatalf("the stream outlived CloseStreams: %v", err)
	}
	wantError(t, e.do(t, "GET", "/v1/sales/drop/queue/events", "", ticketHeader(a.Ticket)), http.StatusServiceUnavailable, "unavailable")
	// Plain status reads still work.
	wantStatus(t, e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(a.Ticket)), http.StatusOK)
}

// TestQueueStreamClientGone: a client that leaves frees its stream slot.
func TestQueueStreamClientGone(t *testing.T) {
	e := streamEnv(t, 1)
	e.roomSale(t, "drop", "fifo")
	a := e.join(t, "drop", "a", http.StatusCreated)
	for range 3 {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/sales/drop/queue/events", nil)
		req.Header.Set(surgehttp.TicketHeader, a.Ticket)
		var resp *http.Response
		var err error
		// The previous stream's slot is freed when its handler sees the
		// disconnection, a moment after the client left.
		for deadline := time.Now().Add(5 * time.Second); ; {
			resp, err = e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
				break
			}
			resp.Body.Close()
			time.Sleep(10 * time.Millisecond)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream slot never freed: %d", resp.StatusCode)
		}
		sse := &sseReader{sc: bufio.NewScanner(resp.Body)}
		if _, err := sse.next(); err != nil {
			t.Fatal(err)
		}
		cancel()
		resp.Body.Close()
	}
}

// TestQueueStreamsPerBuyerAndAddress: one buyer, or one address, cannot
// hold every stream. A buyer's third stream of a sale is refused 429 (its
// fresh tickets are the same buyer), and so is an address's fourth, while
// other buyers and addresses still get theirs.
func TestQueueStreamsPerBuyerAndAddress(t *testing.T) {
	e := streamEnvOptions(t, envOptions{
		maxStreamsPerAddress: 3, // per buyer: the default, 2
		protection:           surgehttp.Protection{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	})
	e.roomSale(t, "drop", "fifo")
	e.roomSale(t, "other", "fifo")
	tickets := map[string]string{}
	for _, u := range []string{"a", "b", "c", "d"} {
		tickets[u] = e.join(t, "drop", u, http.StatusCreated).Ticket
	}
	from := func(addr string) opt { return header("X-Forwarded-For", addr) }
	const home, away = "203.0.113.7", "198.51.100.9"
	open := func(user, addr string) *sseReader {
		t.Helper()
		resp, sse := openStream(t, e, "/v1/sales/drop/queue/events", ticketHeader(tickets[user]), from(addr))
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream of %s from %s: %d %s", user, addr, resp.StatusCode, b)
		}
		if ev, err := sse.next(); err != nil || ev.name != "position" {
			t.Fatalf("stream of %s: %+v, %v", user, ev, err)
		}
		return sse
	}
	// try opens a stream that should be refused: a stream answered 200
	// is closed at once rather than read to its end, which never comes.
	try := func(path string, opts ...opt) response {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			o(req)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header}
		if resp.StatusCode != http.StatusOK {
			r.body, _ = io.ReadAll(resp.Body)
		}
		return r
	}
	refused := func(r response, why string) {
		t.Helper()
		wantError(t, r, http.StatusTooManyRequests, "rate_limited")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q", why, r.header.Get("Retry-After"))
		}
	}
	open("a", home)
	open("a", home)
	refused(try("/v1/sales/drop/queue/events", ticketHeader(tickets["a"]), from(away)), "a buyer's third stream")
	// A fresh ticket, or the query parameter, is the same buyer.
	fresh := e.join(t, "drop", "a", http.StatusOK).Ticket
	refused(try("/v1/sales/drop/queue/events?ticket="+url.QueryEscape(fresh), from(away)), "a fresh ticket")
	refused(try("/v1/sales/drop/queue", ticketHeader(fresh), header("Accept", "text/event-stream"), from(away)),
		"Accept: text/event-stream")
	// Polling is not a stream: it still works.
	wantStatus(t, e.do(t, "GET", "/v1/sales/drop/queue", "", ticketHeader(fresh), from(home)), http.StatusOK)
	// Another buyer still gets a stream; the address is then full.
	open("b", home)
	refused(try("/v1/sales/drop/queue/events", ticketHeader(tickets["c"]), from(home)), "an address's fourth stream")
	// IPv6 clients are counted by /64, the block one subscriber gets.
	open("c", "2001:db8:0:1::1")
	open("d", "2001:db8:0:1::2")
	open("d", "2001:db8:0:1::3")
	refused(try("/v1/sales/drop/queue/events", ticketHeader(tickets["c"]), from("2001:db8:0:1::4")), "a /64's fourth stream")
	// The buyer's cap is per sale: a holds a stream of another sale.
	other := e.join(t, "other", "a", http.StatusCreated).Ticket
	if resp, _ := openStream(t, e, "/v1/sales/other/queue/events", ticketHeader(other), from(away)); resp.StatusCode != http.StatusOK {
		t.Fatalf("a's stream of another sale: %d", resp.StatusCode)
	}
}

// TestArchiveDropsQueue: archiving a sale drops its waiting room's queue,
// which would otherwise hold its entries for as long as the process (or
// Redis) lives.
func TestArchiveDropsQueue(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createSale(t, fmt.Sprintf(`{"id":"short","name":"Short","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":30}}`, ts(-time.Hour), ts(time.Minute)))
	for _, u := range []string{"a", "b", "c"} {
		wantStatus(t, e.do(t, "POST", "/v1/sales/short/queue", "", asUser(t, u)), http.StatusCreated)
	}
	sale := func() *surge.Sale {
		st, err := e.eng.Sale("short")
		if err != nil {
			t.Fatal(err)
		}
		return &st.Sale
	}
	line := func() int64 {
		waiting, admitted, err := e.room.Line(ctx, sale())
		if err != nil {
			t.Fatal(err)
		}
		return waiting + admitted
	}
	if n := line(); n != 3 {
		t.Fatalf("%d in the line before the archive, want 3", n)
	}
	e.clock.Advance(2 * time.Minute)
	wantStatus(t, e.do(t, "POST", "/v1/sales/short/archive", "", asAdmin()), http.StatusOK)
	if n := line(); n != 0 {
		t.Errorf("%d in the line of the archived sale, want 0", n)
	}
}

// docs/api.md: "A purchase in an archived sale answers 404 sale_not_found".
// A sale that had a waiting room answers 403 not_admitted instead, to every
// ticket: its queue was dropped with the archive, so even the ticket of a
// buyer admitted before is refused, with a message telling the buyer to
// "join again" (which answered 409 ended; the queue endpoints now answer
// 404 sale_not_found too: TestQueueOfArchivedSale).
func TestPurchaseInArchivedSaleWithWaitingRoom(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, fmt.Sprintf(`{"id":"gone","name":"Gone","stock":5,"starts_at":%q,"ends_at":%q,
		"waiting_room":{"admit_per_second":1,"order":"fifo","ticket_seconds":300}}`, ts(-time.Hour), ts(time.Minute)))
	q := e.join(t, "gone", "alice", http.StatusCreated)
	e.clock.Advance(2 * time.Minute)
	wantStatus(t, e.do(t, "POST", "/v1/sales/gone/archive", "", asAdmin()), http.StatusOK)

	for name, opts := range map[string][]opt{
		"with the ticket she was admitted with": {asUser(t, "alice"), ticketHeader(q.Ticket)},
		"without a ticket":                      {asUser(t, "alice")},
	} {
		r := e.do(t, "POST", "/v1/sales/gone/purchases", `{"quantity":1}`, opts...)
		if r.status != http.StatusNotFound {
			t.Errorf("purchase %s in the archived sale: %d %s, want 404 sale_not_found", name, r.status, r.body)
		}
	}
}

// The admission window a queue answer states is the one the purchase gate
// applies: a buyer who buys at the admitted_at the API gave (a time of
// the API, in milliseconds) is admitted. Slots open every 1/rate s,
// which at 3 a second is not a whole millisecond: admitted_at was the
// slot's time cut down to the millisecond, before the slot opened, so a
// purchase at admitted_at was refused 403 not_admitted and told to come
// back in a second.
func TestAdmittedAtAdmits(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createSale(t, `{"id":"w3","name":"W","stock":9,"per_user_limit":1,"starts_at":"2031-03-14T10:00:00Z",`+
		`"waiting_room":{"admit_per_second":3,"order":"fifo","ticket_seconds":60}}`)
	users := []string{"u0", "u1", "u2"}
	var q []api.Queue
	for _, u := range users {
		q = append(q, e.join(t, "w3", u, http.StatusCreated))
	}
	for i, u := range users {
		if q[i].AdmittedAt == nil {
			t.Fatalf("%s: no admitted_at: %+v", u, q[i])
		}
		at, err := api.ParseTime(*q[i].AdmittedAt)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Set(at)
		r := e.do(t, "GET", "/v1/sales/w3/queue", "", ticketHeader(q[i].Ticket))
		wantStatus(t, r, http.StatusOK)
		if st := mustQueue(t, r); st.Status != "admitted" {
			t.Errorf("%s at its admitted_at %s: status %q, want admitted", u, *q[i].AdmittedAt, st.Status)
		}
		r = e.do(t, "POST", "/v1/sales/w3/purchases", "", asUser(t, u), ticketHeader(q[i].Ticket))
		if r.status != http.StatusCreated {
			t.Errorf("%s buys at its admitted_at %s: %v (Retry-After %q), want 201", u, *q[i].AdmittedAt, r, r.header.Get("Retry-After"))
		}
	}
}
