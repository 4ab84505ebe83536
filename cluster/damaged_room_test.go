package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/servicetest"
)

// TestOpenRefusesDamagedWaitingRoom: a sale row whose waiting room was
// hand-edited to admit no one was served by every node that started on it,
// and each join of its queue panicked (integer divide by zero) into a 500;
// a node refuses to start on it, naming the sale, as the embedded store
// does.
func TestOpenRefusesDamagedWaitingRoom(t *testing.T) {
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{NoExpiry: true})
	id, name, stock := "room", "Room", int64(5)
	start := time.Now().Add(-time.Minute)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 5, Policy: surge.QueueFIFO, TicketSeconds: 60}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, s, sl)
	s.Close()
	ctx := context.Background()
	if _, err := servicetest.Conn(t, ns).Exec(ctx, `UPDATE sales SET waiting_room = '{"admit_per_second":0,"order":"fifo","ticket_seconds":60}' WHERE id = 'room'`); err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Open(ctx, redisURL(), postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	if err == nil {
		sales, _ := n.Sales(ctx)
		n.Close()
		t.Fatalf("a node started on a waiting room admitting no one, serving %+v", *sales[0].WaitingRoom)
	}
	if !errors.Is(err, postgres.ErrDamaged) || !strings.Contains(err.Error(), "sale room") {
		t.Fatalf("Open: %v; want postgres.ErrDamaged naming sale room", err)
	}
}
