package cluster_test

import (
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/testclock"
)

// TestJoinAfterArchiveLeavesNoQueueInRedis (cluster): a join in flight
// on a node when the sale is ended and archived through another (it read
// the sale before, or its node had not heard yet) made the dropped queue
// again in Redis, where nothing dropped it any more: up to a million
// buyers kept for ever. Such a join is now refused sale_not_found and
// leaves no queue.
func TestJoinAfterArchiveLeavesNoQueueInRedis(t *testing.T) {
	ns := namespace(t)
	ctx := t.Context()
	clk := testclock.New(time.Now().Truncate(time.Second))
	secret := []byte("0123456789abcdef0123456789abcdef")
	engines, rooms := roomNodes(t, ns, clk, secret)
	id, name, stock := "race-room", "Race room", int64(5)
	start, end := clk.Now().Add(-time.Minute), clk.Now().Add(time.Hour)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &end,
		WaitingRoom: &surge.WaitingRoom{AdmitPerSecond: 1, Policy: surge.QueueFIFO, TicketSeconds: 30}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })
	before, err := engines[1].Sale(id) // what node 1's join in flight read
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rooms[1].Join(ctx, &before.Sale, "alice"); err != nil {
		t.Fatal(err)
	}

	now := clk.Now()
	if _, err := engines[0].UpdateSale(ctx, id, surge.SalePatch{EndsAt: &now}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := engines[0].Archive(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := rooms[0].Drop(ctx, id); err != nil { // as the API does after an archive
		t.Fatal(err)
	}

	_, _, err = rooms[1].Join(ctx, &before.Sale, "bob")
	if surge.ErrorCode(err) != surge.CodeSaleNotFound {
		t.Errorf("a join after the archive: %v, want sale_not_found", err)
	}
	rc := dialRedis(t)
	if n, err := rc.Exists(ctx, ns+":{wr:"+id+"}:users", ns+":{wr:"+id+"}:slots", ns+":{wr:"+id+"}:seq").Result(); err != nil || n != 0 {
		t.Fatalf("the archived sale's queue in Redis after the join: %d of its keys (%v); want none", n, err)
	}
}
