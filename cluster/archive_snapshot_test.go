package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/waitroom"
)

// TestArchivedStateBackFromSnapshotRemoved: Redis saved a snapshot while a
// sale was live, the sale was archived (its live state removed), and then
// Redis restarted and reloaded that snapshot: every key of the archived
// sale's live state and waiting room is back, and nothing read or removed
// them again, for good (every buyer, key and held order of the sale, every
// buyer of its room, in Redis's memory). The leader's rounds must find
// and remove them.
func TestArchivedStateBackFromSnapshotRemoved(t *testing.T) {
	rs := startRedisWith(t, "--save", "", "--appendonly", "no")
	ns := namespace(t)
	ctx := context.Background()
	rc, err := redis.Dial(ctx, rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	s := openStoreAt(t, rs.url(), postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NodeID: "a", Interval: time.Hour})
	defer s.Close()

	id, name, stock, hold := "old", "Old", int64(5), int64(3600)
	start, ends := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &ends, HoldSeconds: &hold}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, s, sl)
	outs, _, err := reserve(s, id, surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1})
	if err != nil || outs[0].Code != surge.CodeReserved {
		t.Fatalf("purchase: %+v %v", outs, err)
	}
	if _, err := s.Pay(ctx, outs[0].Order.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Its waiting room, with a buyer in it.
	q := waitroom.Queue{SaleID: id, Schedule: waitroom.Schedule{Start: start, Rate: 10}}
	if _, _, err := s.Queues(0).Join(ctx, q, "bob", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Other sales' keys beside it, live ones: the pass must leave them.
	mustSale(t, s, "live", 5, 1)

	// The sale's keys: its live state's and its waiting room's, but the
	// mark a dropped room keeps for an hour.
	keys := func(sale string) []string {
		t.Helper()
		var out []string
		for _, tag := range []string{sale, "wr:" + sale} {
			k, err := rc.Keys(ctx, ns+":{"+tag+"}:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range k {
				if !strings.HasSuffix(k, "}:dropped") {
					out = append(out, k)
				}
			}
		}
		return out
	}
	if err := rc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArchiveSale(ctx, id, ends.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if k := keys(id); len(k) != 0 {
		t.Fatalf("the archive left keys: %v", k)
	}
	rs.stop()
	rs.start() // reloads the snapshot: the archived sale's keys are back
	if k := keys(id); !slices.Contains(k, ns+":{"+id+"}:m") || !slices.Contains(k, ns+":{wr:"+id+"}:users") {
		t.Fatalf("the snapshot did not bring the archived sale's state and room back: %v", k)
	}

	eventually(t, 15*time.Second, "the leader's rounds remove the archived sale's live state", func() error {
		cluster.Round(ctx, s)
		if k := keys(id); len(k) > 0 {
			return fmt.Errorf("still in Redis: %v", k)
		}
		return nil
	})
	if n, err := rc.Exists(ctx, ns+":{live}:m").Result(); err != nil || n != 1 {
		t.Errorf("the live sale's state: %d, %v; want it left in Redis", n, err)
	}
}
