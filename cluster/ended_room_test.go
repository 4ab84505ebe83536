package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/waitroom"
)

// endedRoom is a sale with a waiting room served by two nodes over the
// real Redis (the queue) and PostgreSQL (the sale): it starts in a minute
// and ends 3 s later, admitting one buyer a second for 30 s each; n
// buyers joined through both nodes in turn, and the clock is a second
// past the end.
type endedRoom struct {
	id      string
	engines []*engine.Engine
	rooms   []*waitroom.Room
	tickets []string
}

func newEndedRoom(t *testing.T, n int) *endedRoom {
	t.Helper()
	ns := namespace(t)
	clk := testclock.New(time.Now().Truncate(time.Second))
	secret := []byte("0123456789abcdef0123456789abcdef") // shared, as --waiting-room-secret
	r := &endedRoom{id: "ended-room"}
	r.engines, r.rooms = roomNodes(t, ns, clk, secret)
	ctx := t.Context()
	name, stock, start := "Ended room", int64(5), clk.Now().Add(time.Minute)
	end := start.Add(3 * time.Second)
	if _, err := r.engines[0].CreateSale(ctx, surge.SaleInput{ID: &r.id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &end,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 30}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := r.engines[1].Sale(r.id); return err })
	r.tickets = make([]string, n)
	for i := range n {
		st, _, err := r.rooms[i%2].Join(ctx, r.sale(t, i%2), fmt.Sprintf("u%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		r.tickets[i] = st.Ticket
	}
	clk.Advance(time.Minute + 4*time.Second)
	return r
}

func (r *endedRoom) sale(t *testing.T, node int) *surge.Sale {
	t.Helper()
	st, err := r.engines[node].Sale(r.id)
	if err != nil {
		t.Fatal(err)
	}
	return &st.Sale
}

// TestQueueOfEndedSaleOnEveryNode (cluster): once the sale has ended,
// every place reads expired on every node, as admission ends with the
// sale. A place whose turn had not come read waiting, with a position and
// a wait, and one admitted before the end admitted, for a sale that sells
// nothing any more.
func TestQueueOfEndedSaleOnEveryNode(t *testing.T) {
	const n = 10
	r := newEndedRoom(t, n)
	for i := range n {
		for node := range 2 {
			st, err := r.rooms[node].Status(t.Context(), r.sale(t, node), r.tickets[i])
			if err != nil {
				t.Fatalf("u%02d's place on node %d: %v", i, node, err)
			}
			if st.State != waitroom.Expired || st.Position != 0 || st.Wait != 0 {
				t.Fatalf("u%02d's place on node %d after the end: %s, position %d, wait %v; want expired, 0, 0",
					i, node, st.State, st.Position, st.Wait)
			}
		}
	}
}

// TestPurchaseOfEndedSaleNotAdmittedOnEveryNode (cluster): a buyer whose
// turn had not come by the end is refused not_admitted on every node
// without a Retry-After: the refusal said "your turn comes in about N s;
// retry after Retry-After", for a sale that sells nothing any more.
func TestPurchaseOfEndedSaleNotAdmittedOnEveryNode(t *testing.T) {
	const n = 10
	r := newEndedRoom(t, n)
	for node := range 2 {
		err := r.rooms[node].Check(t.Context(), r.sale(t, node), fmt.Sprintf("u%02d", n-1), r.tickets[n-1])
		var e *surge.Error
		if !errors.As(err, &e) || e.Code != surge.CodeNotAdmitted || e.RetryAfter != 0 {
			t.Fatalf("u%02d's purchase check on node %d after the end: %v (%+v); want not_admitted without a Retry-After", n-1, node, err, e)
		}
	}
}

// TestQueueMetricsOfEndedSaleOnEveryNode (cluster): the waiting room's
// figures of an ended sale (surge_waiting_room_length and
// surge_waiting_room_admitted_total) count nobody waiting, and as
// admitted those whose turn came before the end: the slots went on
// opening after it, the admitted counter rising into a sale that sells
// nothing.
func TestQueueMetricsOfEndedSaleOnEveryNode(t *testing.T) {
	r := newEndedRoom(t, 10) // slots 0, 1 and 2 opened before the end
	for node := range 2 {
		var found bool
		for _, f := range r.engines[node].SaleFigures(t.Context()) {
			if f.Sale != r.id {
				continue
			}
			found = true
			if !f.WaitingRoom || f.Waiting != 0 || f.Admitted != 3 {
				t.Fatalf("node %d after the end: waiting room %t, waiting %d, admitted %d; want true, 0, 3", node, f.WaitingRoom, f.Waiting, f.Admitted)
			}
		}
		if !found {
			t.Fatalf("node %d: no figures for the sale", node)
		}
	}
}
