package outbox_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestExpiredEventsCluster: the leader's expiry in cluster mode writes one
// expired event per order, published with its subject, id and body, after
// the order's reserved event (docs/events.md).
func TestExpiredEventsCluster(t *testing.T) {
	nc, stream, subject := servicetest.NATS(t)
	s := clusterWithHolds(t, 1000)
	runUntil(t, s, servicetest.NATSURL(), stream, subject)
	past := time.Now()
	var ps []surge.Purchase
	for i := range 20 {
		ps = append(ps, surge.Purchase{UserID: "u" + string(rune('a'+i)), Quantity: 1})
	}
	out, _, err := s.Reserve(t.Context(), "x", ps, surge.At(past))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, o := range out {
		if o.Code != surge.CodeReserved {
			t.Fatalf("%+v", o)
		}
		want[o.Order.ID+":reserved"] = true
		want[o.Order.ID+":expired"] = true
	}
	var msgs []servicetest.StreamMsg
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if msgs = servicetest.ReadStream(t, nc, stream, subject+".>"); len(msgs) >= len(want) {
			break
		}
	}
	time.Sleep(500 * time.Millisecond)
	msgs = servicetest.ReadStream(t, nc, stream, subject+".>")
	seen := map[string]int{}
	var last int64
	for _, m := range msgs {
		var e api.OrderEvent
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		seen[e.ID]++
		if m.MsgID != e.ID || m.Subject != subject+".x."+e.Event || e.Order.Status != e.Event || e.SaleID != "x" {
			t.Errorf("message %s %s: %s", m.Subject, m.MsgID, m.Data)
		}
		if e.Seq <= last {
			t.Errorf("seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		if e.Event == "expired" && seen[e.Order.ID+":reserved"] == 0 {
			t.Errorf("%s before its reserved event", e.ID)
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s: %d messages", id, seen[id])
		}
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("unexpected %s", id)
		}
	}
}

// clusterWithHolds opens a cluster store with events, its own namespace,
// and sale x of stock units, 2 per buyer, holds of one second.
func clusterWithHolds(t *testing.T, stock int64) *cluster.Store {
	t.Helper()
	ns := servicetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Open(ctx, servicetest.RedisURL(), servicetest.PostgresURL(), cluster.Config{
		Prefix: ns, Schema: ns, NodeID: "a", Logger: slog.New(slog.DiscardHandler), Events: true, LeaseTTL: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	id, name, limit, hold := "x", "X", int64(2), int64(1)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, HoldSeconds: &hold}, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(t.Context(), sl); err != nil {
		t.Fatal(err)
	}
	return s
}
