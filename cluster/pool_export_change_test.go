package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// TestExportAndChangeLeaveAConnection: at the smallest pool a node may be
// given (pool_max_conns=2, docs/cluster.md), an export that keeps its
// connection while its reader reads, and a change of a sale, whose install
// lock keeps one while it needs another, took both: the change waited for
// a connection until its bound (20 s) and was answered 503 "may have been
// applied", and meanwhile every purchase of the node waited out its call
// timeout twice and failed, its units held in Redis until the leader
// reconciled them. Exports and install locks together keep all of the
// pool but one connection.
func TestExportAndChangeLeaveAConnection(t *testing.T) {
	ns := namespace(t)
	s := openStoreAt(t, redisURL(), postgresURL()+"&pool_max_conns=2", cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true})
	defer s.Close()
	sl := mustSale(t, s, "small-pool", 100, 5)
	if out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase: %+v %v", out, err)
	}
	// An export whose reader is slow: it keeps its connection.
	block, reading := make(chan struct{}), make(chan struct{})
	exported := make(chan error, 1)
	go func() {
		first := true
		exported <- s.Orders(context.Background(), sl.ID, func(surge.Order) error {
			if first {
				first = false
				close(reading)
			}
			<-block
			return nil
		})
	}()
	<-reading
	changed := make(chan error, 1)
	go func() {
		stock := int64(200)
		_, err := s.UpdateSale(context.Background(), sl.ID, surge.SalePatch{Stock: &stock}, time.Now)
		changed <- err
	}()
	time.Sleep(300 * time.Millisecond) // the change holds or waits for its install lock
	out, took, err := reserve(s, sl.ID, surge.Purchase{UserID: "v", IdempotencyKey: "k", Quantity: 1})
	close(block)
	switch {
	case err != nil:
		t.Errorf("a purchase while an export reads and a change of the sale is under way, pool of 2: %v after %v; want it committed", err, took)
	case out[0].Err != nil || out[0].Code != surge.CodeReserved:
		t.Errorf("a purchase while an export reads and a change is under way, pool of 2: %+v; want reserved", out[0])
	}
	if err := <-exported; err != nil {
		t.Errorf("export: %v", err)
	}
	select {
	case err := <-changed:
		if err != nil {
			t.Errorf("the change, once the export ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the change had not ended 10 s after the export did")
	}
}
