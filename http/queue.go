package http

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/admission"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/waitroom"
)

// TicketHeader carries a buyer's waiting-room ticket on queue reads and
// purchases.
const TicketHeader = "Waiting-Room-Ticket"

// DefaultMaxQueueStreams bounds the Server-Sent Events streams of queue
// positions open at once: each holds a connection and a goroutine.
const DefaultMaxQueueStreams = 4096

// Per-holder bounds of queue streams, so that no one holds them all. A
// buyer needs one stream per sale; the second covers a reconnection
// while the server has not yet noticed the old connection is gone. An
// address may be a household or an office behind one NAT.
const (
	DefaultMaxQueueStreamsPerBuyer   = 2
	DefaultMaxQueueStreamsPerAddress = 16
)

// streamRetryAfter is the Retry-After of a refused stream: an open stream
// lasts up to streamMaxAge, so there is no exact time; polling works
// meanwhile.
const streamRetryAfter = 5 * time.Second

// queueState is the waiting room's state in the API.
type queueState struct {
	stop     chan struct{}
	stopOnce sync.Once
	// tick and heartbeat of streams; zero: the defaults.
	tick, heartbeat time.Duration
	// ticked, set by tests only, is called after each look a stream takes
	// at its place.
	ticked func()

	// public counts the streams of the API's listener, admin those of
	// the operators' own (Server.Admin), each at the same bounds: buyers
	// who hold every stream the public API allows leave the operators
	// theirs, as the per-address rate limit keeps buckets of each.
	public, admin streamSlots
}

// streamSlots counts the open streams of one listener.
type streamSlots struct {
	mu sync.Mutex
	// Bounds (Server.Apply changes them) and the streams open; a lowered
	// bound closes no stream, it refuses new ones until below it.
	maxStreams, perBuyer, perAddr int
	streams                       int
	// Open streams by holder; a holder leaves the map with its last
	// stream, so the maps hold only what is open.
	byBuyer map[buyerKey]int
	byAddr  map[netip.Prefix]int
}

// buyerKey is whom a ticket admits: a buyer in one sale. Every ticket a
// buyer is handed for a sale counts as the same.
type buyerKey struct{ sale, user string }

func newQueueState(cfg Config) *queueState {
	q := &queueState{stop: make(chan struct{})}
	for _, sl := range []*streamSlots{&q.public, &q.admin} {
		sl.byBuyer = make(map[buyerKey]int)
		sl.byAddr = make(map[netip.Prefix]int)
	}
	q.setBounds(cfg)
	return q
}

// setBounds applies the stream bounds of cfg to both listeners.
func (q *queueState) setBounds(cfg Config) {
	q.public.setBounds(cfg)
	q.admin.setBounds(cfg)
}

// slots are the stream counts of s's listener.
func (s *Server) slots() *streamSlots {
	if s.adminListener {
		return &s.queues.admin
	}
	return &s.queues.public
}

// setBounds applies the stream bounds of cfg.
func (q *streamSlots) setBounds(cfg Config) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.maxStreams = positiveOr(cfg.MaxQueueStreams, DefaultMaxQueueStreams)
	q.perBuyer = positiveOr(cfg.MaxQueueStreamsPerBuyer, DefaultMaxQueueStreamsPerBuyer)
	q.perAddr = positiveOr(cfg.MaxQueueStreamsPerAddress, DefaultMaxQueueStreamsPerAddress)
}

func positiveOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// addrPrefix is the holder of an address: itself, or for IPv6 its /64,
// the block one subscriber is given (as the per-address rate limit
// counts). The zero Addr (not an IP connection) stays unbounded here.
func addrPrefix(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}, false
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// acquire takes a stream slot for buyer b at address a, or says why not:
// 429 when the buyer or the address holds its share, 503 when every
// stream is taken. release must be called once the stream ends.
func (q *streamSlots) acquire(b buyerKey, a netip.Addr) (release func(), err error) {
	return q.take(&b, a, "GET /v1/sales/"+b.sale+"/queue")
}

// StreamSlot takes a slot for a long-lived stream other than a queue's
// (the gRPC API's WatchSale) from r's client address. Such a stream holds
// a connection and a goroutine as a queue event stream does, so it counts
// against the same bounds: the address's (MaxQueueStreamsPerAddress) and
// the total (MaxQueueStreams). A refusal is rate_limited or overloaded, as
// a queue stream's, naming instead as what to call meanwhile. release
// must be called once the stream ends.
func (s *Server) StreamSlot(r *http.Request, instead string) (release func(), err error) {
	return s.slots().take(nil, admission.ClientIP(r, s.protection().TrustedProxies), instead)
}

// take takes a stream slot at address a, and for buyer b unless nil;
// instead names what to poll when it is refused.
func (q *streamSlots) take(b *buyerKey, a netip.Addr, instead string) (release func(), err error) {
	p, hasAddr := addrPrefix(a)
	q.mu.Lock()
	defer q.mu.Unlock()
	if b != nil && q.byBuyer[*b] >= q.perBuyer {
		return nil, &surge.Error{Code: surge.CodeRateLimited, RetryAfter: streamRetryAfter, Message: fmt.Sprintf(
			"this buyer already holds %d open streams of this sale; close one, or poll %s", q.perBuyer, instead)}
	}
	if hasAddr && q.byAddr[p] >= q.perAddr {
		return nil, &surge.Error{Code: surge.CodeRateLimited, RetryAfter: streamRetryAfter, Message: fmt.Sprintf(
			"this address already holds %d open streams; close one, or poll %s", q.perAddr, instead)}
	}
	if q.streams >= q.maxStreams {
		return nil, &surge.Error{Code: surge.CodeOverloaded, RetryAfter: streamRetryAfter,
			Message: fmt.Sprintf("too many open streams; poll %s instead", instead)}
	}
	q.streams++
	if b != nil {
		q.byBuyer[*b]++
	}
	if hasAddr {
		q.byAddr[p]++
	}
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.streams--
		if b != nil {
			if q.byBuyer[*b]--; q.byBuyer[*b] <= 0 {
				delete(q.byBuyer, *b)
			}
		}
		if hasAddr {
			if q.byAddr[p]--; q.byAddr[p] <= 0 {
				delete(q.byAddr, p)
			}
		}
	}, nil
}

// defaultRoom is the waiting room when Config has none: in memory, with a
// random key, so tickets die with the process.
func defaultRoom(log *slog.Logger) *waitroom.Room {
	key := make([]byte, waitroom.MinSecretLen)
	_, _ = rand.Read(key) // never fails on supported platforms (Go 1.24+)
	room, err := waitroom.New(waitroom.Config{Secret: key})
	if err != nil {
		panic(err) // the key has the required length
	}
	log.Warn("waiting-room tickets are signed with a random per-process key: they become invalid on restart and on other nodes; configure a shared secret")
	return room
}

// toQueueJSON is the queue object of st.
func toQueueJSON(st waitroom.Status) api.Queue {
	j := api.Queue{
		SaleID: st.SaleID, UserID: st.UserID, Ticket: st.Ticket, Status: st.State,
		Admitted:             st.State == waitroom.Admitted,
		EstimatedWaitSeconds: int64((st.Wait + time.Second - 1) / time.Second),
	}
	if st.Position >= 0 {
		j.Position = &st.Position
	}
	if !st.AdmitAt.IsZero() {
		// A slot opens every 1/rate s, not on a whole millisecond: the
		// window stated in the API's milliseconds is the one inside the
		// true window (its start rounded up, its end down), so that a
		// purchase at admitted_at is admitted, and one before
		// admitted_until too.
		admit := st.AdmitAt
		if t := admit.Truncate(time.Millisecond); t.Before(admit) {
			admit = t.Add(time.Millisecond)
		}
		at, until := api.FormatTime(admit), api.FormatTime(st.Until)
		j.AdmittedAt, j.AdmittedUntil = &at, &until
	}
	return j
}

// queueSale reads the {id} sale of a queue endpoint, answering 404 or
// 409 no_waiting_room itself.
func (s *Server) queueSale(w http.ResponseWriter, r *http.Request) (*surge.Sale, bool) {
	st, ok := s.queueSaleOf(w, r)
	if !ok {
		return nil, false
	}
	return &st.Sale, true
}

// queueSaleOf is queueSale with the sale's figures and status.
func (s *Server) queueSaleOf(w http.ResponseWriter, r *http.Request) (*engine.SaleState, bool) {
	id, ok := pathID(r)
	if !ok {
		writeError(w, http.StatusNotFound, string(surge.CodeSaleNotFound), "sale not found")
		return nil, false
	}
	st, err := queueSaleState(s.svc, id)
	if err != nil {
		s.writeErr(w, r, err)
		return nil, false
	}
	if st.WaitingRoom == nil {
		s.writeErr(w, r, waitroom.NoWaitingRoom(&st.Sale))
		return nil, false
	}
	return &st, true
}

// queueSaleState is sale id as the queue endpoints see it: an archived
// sale is out of service, and its queue was dropped with the archive, so
// it is no sale for them (404 sale_not_found, as for a purchase in it).
func queueSaleState(svc Service, id string) (engine.SaleState, error) {
	st, err := svc.Sale(id)
	if err == nil && st.Archived {
		return engine.SaleState{}, surge.ErrSaleNotFound
	}
	return st, err
}

// joinQueue is POST /v1/sales/{id}/queue: 201 with a new place, 200 with
// the place the buyer already had.
func (s *Server) joinQueue(w http.ResponseWriter, r *http.Request) {
	queueNoStore(w)
	user, err := s.auth.buyer(r)
	if err != nil {
		unauthenticated(w, r, err)
		return
	}
	if !noQueryNoInput(w, r) {
		return
	}
	state, ok := s.queueSaleOf(w, r)
	if !ok {
		return
	}
	sale := &state.Sale
	if !noBody(w, r) {
		return
	}
	// A paused sale reads paused whatever its stock: one paused once
	// sold out has no unit left all the same.
	if state.Status == surge.SaleSoldOut || state.Status == surge.SalePaused && state.Remaining <= 0 {
		// A sold-out sale takes no new buyer into its line, where each
		// would wait for a turn only to be told sold out; the buyers
		// in it keep their places, for the units that come back.
		st, err := s.room.Place(r.Context(), sale, user)
		if errors.Is(err, waitroom.ErrNotQueued) {
			err = surge.Errorf(surge.CodeSoldOut, "sale %s is sold out: its waiting room takes no new buyers until units come back (a hold expires or is cancelled)", sale.ID)
		}
		if err != nil {
			s.queueErr(w, r, err)
			return
		}
		s.writeQueue(w, http.StatusOK, st)
		return
	}
	st, created, err := s.room.Join(r.Context(), sale, user)
	if err != nil {
		s.queueErr(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeQueue(w, status, st)
}

// noStoreQueue is the Cache-Control of every queue answer: the queue
// object carries a ticket, and an error (a 404 before the sale exists is
// cacheable by default) kept by a cache in front would be handed to every
// buyer polling the path.
var noStoreQueue = []string{"no-store"}

// queueNoStore is called first by every queue handler, so that its errors
// say no-store too.
func queueNoStore(w http.ResponseWriter) { w.Header()["Cache-Control"] = noStoreQueue }

func (s *Server) writeQueue(w http.ResponseWriter, status int, st waitroom.Status) {
	h := w.Header()
	queueNoStore(w)
	if st.State == waitroom.Waiting && st.Wait > 0 {
		h.Set("Retry-After", RetryAfter(min(st.Wait, 10*time.Second)))
	}
	writeJSON(w, status, toQueueJSON(st))
}

// ticketOf returns the request's ticket: the header, or for event streams
// (EventSource cannot set headers) the ticket query parameter. Sent both
// ways, two different tickets are refused as two headers are: following
// either would drop the other unseen, and it may be another buyer's.
func ticketOf(r *http.Request, query bool) (string, error) {
	tickets := r.Header[TicketHeader]
	if len(tickets) > 1 {
		return "", surge.Errorf(surge.CodeInvalidTicket, "send one %s header, not %d", TicketHeader, len(tickets))
	}
	if query {
		q := r.URL.Query()["ticket"]
		if len(q) > 1 {
			return "", surge.Errorf(surge.CodeInvalidTicket, "send one ticket parameter, not %d", len(q))
		}
		if len(q) == 1 && len(tickets) == 1 && q[0] != tickets[0] {
			return "", surge.Errorf(surge.CodeInvalidTicket,
				"the %s header and the ticket parameter hold two different tickets: send one ticket", TicketHeader)
		}
		if len(q) == 1 {
			return q[0], nil
		}
	}
	if len(tickets) == 1 {
		return tickets[0], nil
	}
	return "", nil
}

// queueStatus is GET /v1/sales/{id}/queue; with Accept: text/event-stream
// it is the event stream.
func (s *Server) queueStatus(w http.ResponseWriter, r *http.Request) {
	queueNoStore(w)
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		s.queueEvents(w, r)
		return
	}
	sale, ok := s.queueSale(w, r)
	if !ok {
		return
	}
	ticket, err := ticketOf(r, false)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	st, err := s.room.Status(r.Context(), sale, ticket)
	if err != nil {
		s.queueErr(w, r, err)
		return
	}
	s.writeQueue(w, http.StatusOK, st)
}

// queueErr answers err, the waiting room's refusal or failure, unless the
// request's client is gone. In cluster mode the queue is in Redis, and
// the first call after the client left fails with the request's ended
// context: no failure of the server, which writeErr would answer 500
// internal and log at level error. Such a request is left unanswered, as
// a purchase or an order read is (clientGone).
func (s *Server) queueErr(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		clientGone(r)
	}
	s.writeErr(w, r, err)
}

// CloseStreams ends every open event stream (queue and dashboard), and
// refuses new ones: http.Server.Shutdown waits for handlers, and a stream
// would otherwise hold it until its client leaves. Register it with
// http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() {
	s.queues.stopOnce.Do(func() { close(s.queues.stop) })
	if s.dash != nil {
		s.dash.Close()
	}
}
