// Package waitroom is a sale's waiting room: buyers join a queue, are
// admitted at the sale's rate in FIFO or lottery order, and prove their
// admittance with a signed ticket when they buy.
//
// The Room holds the rules and the tickets; where the queue lives is a
// Backend's business (in memory here; Redis can be added behind the same
// interface for a cluster).
package waitroom

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/surgehq/surge"
)

// Config configures a Room.
type Config struct {
	// Secret is the HMAC-SHA256 key of tickets, at least MinSecretLen
	// bytes. Every node serving a sale must share it, and tickets stay
	// valid across restarts only if it does.
	Secret []byte
	// Previous are keys whose tickets still verify, never used to sign:
	// the generated key of the process an upgrade replaced, when this one
	// was given a secret. Each at least MinSecretLen bytes.
	Previous [][]byte
	// Backend holds the queues; nil is NewMemory(DefaultMaxEntries).
	Backend Backend
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Room admits buyers to sales that have a waiting room.
type Room struct {
	backend Backend
	signer  signer
	now     func() time.Time
}

// New returns a Room; it refuses a missing or short secret.
func New(cfg Config) (*Room, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("waitroom: the ticket secret must be at least %d bytes, got %d", MinSecretLen, len(cfg.Secret))
	}
	prev := make([][]byte, 0, len(cfg.Previous))
	for _, k := range cfg.Previous {
		if len(k) < MinSecretLen {
			return nil, fmt.Errorf("waitroom: a previous ticket key must be at least %d bytes, got %d", MinSecretLen, len(k))
		}
		prev = append(prev, append([]byte(nil), k...))
	}
	if cfg.Backend == nil {
		cfg.Backend = NewMemory(DefaultMaxEntries)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Room{backend: cfg.Backend, signer: signer{key: append([]byte(nil), cfg.Secret...), previous: prev}, now: cfg.Now}, nil
}

// Buyer-visible states of an entry.
const (
	Waiting  = "waiting"
	Admitted = "admitted"
	Expired  = "expired"
)

// Status is a buyer's place in a sale's queue at one instant.
type Status struct {
	SaleID, UserID string
	// Ticket is a fresh ticket for the entry: it carries the slot once
	// known, so a purchase with it needs no queue lookup.
	Ticket string
	State  string // Waiting, Admitted or Expired (every place, once the sale has ended)
	// Position is 1 for the next buyer to be admitted, 2 for the one
	// after...; 0 once admitted (or expired); -1 before a lottery's draw,
	// when no order exists yet.
	Position int64
	// AdmitAt and Until bound the admitted window; zero before a lottery's draw.
	AdmitAt, Until time.Time
	// Wait is how long until it is admitted (until the draw, before it); 0
	// once admitted.
	Wait time.Duration
}

// clock is the waiting room's time at now: now less how long the sale
// has been paused (surge.Sale.Stopped). It stands still while the sale is
// paused, so nobody is admitted into a sale that sells nothing, and the
// admitted lose none of their window to a pause they cannot buy in; the
// line resumes where it stopped. The schedule and the backend work on
// this clock; answers add the pauses back (stopped) to state instants.
func clock(sale *surge.Sale, now time.Time) (at time.Time, stopped time.Duration) {
	stopped = sale.Stopped(now)
	return now.Add(-stopped), stopped
}

func queueOf(s *surge.Sale) Queue {
	return Queue{
		SaleID:   s.ID,
		Schedule: Schedule{Start: s.StartsAt, Rate: s.WaitingRoom.AdmitPerSecond},
		Lottery:  s.WaitingRoom.Policy == surge.QueueLottery,
	}
}

// NoWaitingRoom answers a queue request for sale s, which has none.
func NoWaitingRoom(s *surge.Sale) *surge.Error {
	return surge.Errorf(surge.CodeNoWaitingRoom, "sale %s has no waiting room: buy directly", s.ID)
}

// Join puts userID in sale's queue, or finds the place they already have;
// created reports a new entry.
func (r *Room) Join(ctx context.Context, sale *surge.Sale, userID string) (st Status, created bool, err error) {
	if sale.WaitingRoom == nil {
		return Status{}, false, NoWaitingRoom(sale)
	}
	now := r.now()
	if sale.Window(now) == surge.CodeEnded {
		return Status{}, false, surge.Errorf(surge.CodeEnded, "the sale has ended; its queue is closed")
	}
	q := queueOf(sale)
	at, _ := clock(sale, now)
	e, created, err := r.backend.Join(ctx, q, userID, at)
	if errors.Is(err, ErrFull) {
		return Status{}, false, surge.Errorf(surge.CodeQueueFull,
			"the waiting room of sale %s is full: it takes no more buyers", sale.ID)
	}
	if errors.Is(err, ErrDropped) {
		// Archived since the sale was read: the queue endpoints answer
		// an archived sale so.
		return Status{}, false, surge.ErrSaleNotFound
	}
	if err != nil {
		return Status{}, false, backendErr("join", sale.ID, err)
	}
	epoch, err := r.backend.Epoch(ctx, q)
	if err != nil {
		return Status{}, false, backendErr("join", sale.ID, err)
	}
	st, err = r.status(ctx, sale, q, userID, e, epoch, now)
	return st, created, err
}

// Place reports the place userID already holds in sale's queue, as Join
// answers it, without making one: ErrNotQueued if the buyer has none. A
// sale that takes no new buyers (sold out) still answers those it has.
func (r *Room) Place(ctx context.Context, sale *surge.Sale, userID string) (Status, error) {
	if sale.WaitingRoom == nil {
		return Status{}, NoWaitingRoom(sale)
	}
	now := r.now()
	q := queueOf(sale)
	at, _ := clock(sale, now)
	epoch, err := r.backend.Epoch(ctx, q)
	if err != nil {
		return Status{}, backendErr("join", sale.ID, err)
	}
	e, err := r.backend.Lookup(ctx, q, userID, at)
	if errors.Is(err, ErrNotQueued) {
		return Status{}, err
	}
	if err != nil {
		return Status{}, backendErr("join", sale.ID, err)
	}
	return r.status(ctx, sale, q, userID, e, epoch, now)
}

// Status reports the place of the ticket's holder in sale's queue. The
// ticket is all it needs: reading one's place is not worth a login.
func (r *Room) Status(ctx context.Context, sale *surge.Sale, text string) (Status, error) {
	if sale.WaitingRoom == nil {
		return Status{}, NoWaitingRoom(sale)
	}
	bad := func(format string, args ...any) (Status, error) {
		return Status{}, surge.Errorf(surge.CodeInvalidTicket, format, args...)
	}
	if text == "" {
		return bad("send the ticket from POST /v1/sales/%s/queue in the Waiting-Room-Ticket header", sale.ID)
	}
	t, err := r.signer.parse(text)
	if err != nil {
		return bad("%v", err)
	}
	if t.SaleID != sale.ID {
		return bad("the ticket is for sale %s, not %s", t.SaleID, sale.ID)
	}
	now := r.now()
	q := queueOf(sale)
	at, _ := clock(sale, now)
	e, err := r.entry(ctx, q, t, at)
	switch {
	case errors.Is(err, errStale):
		return bad("%v", errStale)
	case errors.Is(err, ErrNotQueued):
		return bad("the queue has no entry for this ticket (it was lost in a restart); join again")
	case err != nil:
		return Status{}, backendErr("status in", sale.ID, err)
	}
	return r.status(ctx, sale, q, t.UserID, e, t.Epoch, now)
}

// entry is the ticket's entry: from the ticket once it carries its slot
// and the queue still holds that very place for its buyer, else from the
// backend. errStale if the queue lost its places since the ticket was
// issued: the slot it names may belong to someone else now. A queue that
// came back older (a Redis snapshot reloaded, a lagging replica promoted)
// keeps its epoch but not the places handed out since: their tickets are
// stale too, or their buyers could rejoin ahead and hold two admissions.
// at is the room's clock (a lottery's draw is due at its start).
func (r *Room) entry(ctx context.Context, q Queue, t ticket, at time.Time) (Entry, error) {
	if t.Slot != Unassigned {
		epoch, e, err := r.backend.Place(ctx, q, t.UserID)
		if err != nil && !errors.Is(err, ErrNotQueued) {
			return Entry{}, err
		}
		if epoch != t.Epoch || err != nil || e.Seq != t.Seq || e.Slot != t.Slot {
			return Entry{}, errStale
		}
		return Entry{Seq: t.Seq, Slot: t.Slot}, nil
	}
	epoch, err := r.backend.Epoch(ctx, q)
	if err != nil {
		return Entry{}, err
	}
	if epoch != t.Epoch {
		return Entry{}, errStale
	}
	return r.backend.Lookup(ctx, q, t.UserID, at)
}

func (r *Room) status(ctx context.Context, sale *surge.Sale, q Queue, userID string, e Entry, epoch uint64, now time.Time) (Status, error) {
	// The ticket leaves the draw out (0): it is signed, not encrypted, and
	// a lottery's draws are its order, secret until drawn. Nothing reads
	// it back: a ticket without its slot has its entry looked up.
	st := Status{SaleID: sale.ID, UserID: userID, State: Waiting, Position: -1,
		Ticket: r.signer.sign(ticket{SaleID: sale.ID, UserID: userID, Seq: e.Seq, Slot: e.Slot, Issued: now, Epoch: epoch})}
	at, stopped := clock(sale, now)
	// Admission ends with the sale (a pause does not move ends_at): once
	// it has ended, every place is over for good, whether its turn came
	// or not, rather than a wait for an admission that cannot buy.
	ended := sale.Window(now) == surge.CodeEnded
	if e.Slot == Unassigned {
		if ended {
			st.State, st.Position = Expired, 0
			return st, nil
		}
		st.Wait = max(sale.StartsAt.Sub(at), 0)
		return st, nil
	}
	admit := q.Schedule.AdmitAt(e.Slot)
	until := admit.Add(time.Duration(sale.WaitingRoom.TicketSeconds) * time.Second)
	// The window as it stands: instants still to come move on by any
	// later pause as well. It ends with the sale, whose ends_at a pause
	// does not move: no window reaches past it, and a turn due after it is
	// an empty window there (until an operator moves the end).
	st.AdmitAt, st.Until = admit.Add(stopped), until.Add(stopped)
	if end := sale.EndsAt; !end.IsZero() {
		st.AdmitAt, st.Until = earlier(st.AdmitAt, end), earlier(st.Until, end)
	}
	switch {
	case ended || !at.Before(until):
		st.State, st.Position = Expired, 0
	case !at.Before(admit):
		st.State, st.Position = Admitted, 0
	default:
		ahead, err := r.backend.Between(ctx, q, q.Schedule.Opened(at), e.Slot)
		if err != nil {
			return Status{}, backendErr("position in", sale.ID, err)
		}
		st.Position = ahead + 1
		// admit less at, unless the sale ends first: no wait past the end.
		st.Wait = st.AdmitAt.Sub(now)
	}
	return st, nil
}

// Check is the purchase gate of a sale with a waiting room: nil if the
// ticket admits userID to buy now, else a CodeNotAdmitted error saying
// why, with RetryAfter when the admitted window is still to come. A ticket that
// carries its slot costs one backend read, of the buyer's place (a queue
// rebuilt or the place gone makes the ticket stale); one without it, the
// queue's epoch and a lookup.
func (r *Room) Check(ctx context.Context, sale *surge.Sale, userID, text string) error {
	no := func(wait time.Duration, format string, args ...any) error {
		e := surge.Errorf(surge.CodeNotAdmitted, format, args...)
		e.RetryAfter = wait
		return e
	}
	if text == "" {
		return no(0, "sale %s has a waiting room: join it with POST /v1/sales/%s/queue, then buy with the ticket in the Waiting-Room-Ticket header once admitted", sale.ID, sale.ID)
	}
	t, err := r.signer.parse(text)
	if err != nil {
		return no(0, "invalid Waiting-Room-Ticket: %v", err)
	}
	if t.SaleID != sale.ID {
		return no(0, "the Waiting-Room-Ticket is for sale %s, not %s", t.SaleID, sale.ID)
	}
	if t.UserID != userID {
		return no(0, "the Waiting-Room-Ticket was issued to another buyer; tickets cannot be transferred")
	}
	now := r.now()
	q := queueOf(sale)
	at, stopped := clock(sale, now)
	e, err := r.entry(ctx, q, t, at)
	switch {
	case errors.Is(err, errStale):
		return no(0, "invalid Waiting-Room-Ticket: %v", errStale)
	case errors.Is(err, ErrNotQueued):
		return no(0, "the queue has no entry for this ticket (it was lost in a restart); join again")
	case err != nil:
		return backendErr("check in", sale.ID, err)
	}
	// A turn still to come at the end never comes: no wait to retry after.
	ended := sale.Window(now) == surge.CodeEnded
	if e.Slot == Unassigned {
		if ended {
			return no(0, "not admitted: the sale has ended before the lottery's draw")
		}
		wait := sale.StartsAt.Sub(at)
		return no(wait, "not admitted yet: the lottery is drawn when the sale starts, in %s", ceilSeconds(wait))
	}
	admit := q.Schedule.AdmitAt(e.Slot)
	until := admit.Add(time.Duration(sale.WaitingRoom.TicketSeconds) * time.Second)
	if at.Before(admit) && ended {
		return no(0, "not admitted: the sale has ended before your turn came")
	}
	// Nor does a turn due at or after the end (status reads it as an
	// empty window there): a wait for it would only lead to the above.
	if end := sale.EndsAt; at.Before(admit) && !end.IsZero() && !admit.Add(stopped).Before(end) {
		return no(0, "not admitted: your turn comes after the sale ends at %s, and admission ends with the sale",
			end.UTC().Format(time.RFC3339Nano))
	}
	if at.Before(admit) {
		wait := admit.Sub(at)
		return no(wait, "not admitted yet: your turn comes in about %s; retry after Retry-After", ceilSeconds(wait))
	}
	if !at.Before(until) {
		// Marked: the buyer was admitted and may have bought in its turn,
		// and a replay of that purchase must still be answered.
		return surge.AdmissionOver(no(0, "your turn to buy expired at %s: it lasted %d s and cannot be renewed",
			until.Add(stopped).UTC().Format(time.RFC3339), sale.WaitingRoom.TicketSeconds))
	}
	return nil
}

// backendErr wraps a failure of the queues' backend (Redis in cluster
// mode: down, timed out) as 503 unavailable with a retry, as every other
// dependency failure is answered, instead of an untyped error that the
// APIs answer 500 internal without Retry-After. A caller that left keeps
// its context error, and an error that already has a code keeps it.
func backendErr(what, saleID string, err error) error {
	if surge.ErrorCode(err) != "" || errors.Is(err, context.Canceled) {
		return fmt.Errorf("waitroom: %s %s: %w", what, saleID, err)
	}
	return fmt.Errorf("%w: waitroom: %s %s: %w", &surge.Error{Code: surge.CodeUnavailable, RetryAfter: time.Second,
		Message: "the waiting room's queue is unreachable; retry shortly"}, what, saleID, err)
}

// earlier is the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ceilSeconds spells d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) string {
	return fmt.Sprintf("%d s", max(1, int64((d+time.Second-1)/time.Second)))
}
