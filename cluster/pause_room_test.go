package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/internal/testclock"
	"github.com/surgehq/surge/waitroom"
)

// TestPauseStopsWaitingRoomClockOnEveryNode (cluster: two nodes over the
// real Redis, which holds the queue, and PostgreSQL, which holds the
// sale): a pause made on one node and a resume made on the other stop the
// waiting room's clock for both. The admission windows ran on through a
// pause, so a buyer admitted just before one lost it to 409 paused and
// had to queue again. Every node must stop the same clock, so the pause's
// start is kept with the sale, where every node reads it: the node that
// resumes is not the one that paused.
func TestPauseStopsWaitingRoomClockOnEveryNode(t *testing.T) {
	ns := namespace(t)
	clk := testclock.New(time.Now().Truncate(time.Second))
	secret := []byte("0123456789abcdef0123456789abcdef") // shared, as --waiting-room-secret
	engines, rooms := roomNodes(t, ns, clk, secret)
	ctx := t.Context()
	id, name, stock, start := "paused-room", "Paused room", int64(100), clk.Now().Add(time.Minute)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 30}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })
	sale := func(node int) *surge.Sale {
		t.Helper()
		st, err := engines[node].Sale(id)
		if err != nil {
			t.Fatal(err)
		}
		return &st.Sale
	}
	const n = 20
	tickets := make([]string, n)
	for i := range n { // through both nodes, in turn
		st, _, err := rooms[i%2].Join(ctx, sale(i%2), fmt.Sprintf("u%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		tickets[i] = st.Ticket
	}
	status := func(node, i int) waitroom.Status {
		t.Helper()
		st, err := rooms[node].Status(ctx, sale(node), tickets[i])
		if err != nil {
			t.Fatalf("u%02d's place on node %d: %v", i, node, err)
		}
		return st
	}
	steer := func(node int, paused bool, want surge.SaleStatus) {
		t.Helper()
		if _, err := engines[node].UpdateSale(ctx, id, surge.SalePatch{Paused: &paused}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, fmt.Sprintf("node %d follows", 1-node), func() error {
			if st, _ := engines[1-node].Sale(id); st.Status != want {
				return fmt.Errorf("status %s, want %s", st.Status, want)
			}
			return nil
		})
	}

	// u00 is admitted with 20 s left, u01…u10 after it; u11 is next.
	clk.Advance(time.Minute + 10*time.Second)
	before := make([]waitroom.Status, n)
	for i := range n {
		before[i] = status(i%2, i)
	}
	if before[0].State != waitroom.Admitted || before[11].State != waitroom.Waiting || before[11].Position != 1 {
		t.Fatalf("before the pause: u00 %+v, u11 %+v", before[0], before[11])
	}

	steer(0, true, surge.SalePaused)
	clk.Advance(10 * time.Minute) // far past every window of the line
	for i := range n {
		for node := range 2 {
			if got := status(node, i); got.State != before[i].State || got.Position != before[i].Position || got.Wait != before[i].Wait {
				t.Fatalf("u%02d 10 minutes into the pause, on node %d: %s, position %d, wait %v; before it: %s, position %d, wait %v (the clock ran on)",
					i, node, got.State, got.Position, got.Wait, before[i].State, before[i].Position, before[i].Wait)
			}
		}
	}

	steer(1, false, surge.SaleLive)
	for i := range n {
		for node := range 2 {
			got, b := status(node, i), before[i]
			if got.State != b.State || got.Position != b.Position ||
				!got.AdmitAt.Equal(b.AdmitAt.Add(10*time.Minute)) || !got.Until.Equal(b.Until.Add(10*time.Minute)) {
				t.Fatalf("u%02d after the pause, on node %d: %s, position %d, window %v to %v; want %s, position %d, the window moved on by the pause",
					i, node, got.State, got.Position, got.AdmitAt, got.Until, b.State, b.Position)
			}
		}
	}
	// The tickets of before the pause buy, on either node.
	for i, node := range []int{0, 1} {
		out, err := engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id,
			Purchase: surge.Purchase{UserID: fmt.Sprintf("u%02d", i), Quantity: 1}, Tickets: []string{tickets[i]}})
		if err != nil || out.Code != surge.CodeReserved {
			t.Fatalf("u%02d buys on node %d after the pause: %+v, %v; want reserved", i, node, out, err)
		}
	}
}

// roomNodes opens two nodes (n0, n1) over the real Redis and PostgreSQL
// in namespace ns, each an engine with its waiting room on clk, the
// rooms' tickets signed with secret, as --waiting-room-secret shared.
func roomNodes(t *testing.T, ns string, clk *testclock.Clock, secret []byte) ([]*engine.Engine, []*waitroom.Room) {
	t.Helper()
	var (
		engines []*engine.Engine
		rooms   []*waitroom.Room
	)
	for i := range 2 {
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i), Interval: 200 * time.Millisecond})
		room, err := waitroom.New(waitroom.Config{Secret: secret, Backend: s.Queues(0), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.Open(context.Background(), s, engine.Config{Now: clk.Now, WaitingRoom: room})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			e.Close()
			s.Close()
		})
		engines, rooms = append(engines, e), append(rooms, room)
	}
	return engines, rooms
}
