package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/engine"
)

// TestReplayAboveLoweredLimitOnAnotherNode (cluster, two nodes): a key
// that bought 3 units on node 0 under a per-user limit of 3 replays its
// first order on node 1, which never saw the key, after the operator
// lowered the limit to 1: node 1 does not know the key (KeyUnknown, "not
// known on this node"), so the purchase goes to Redis, which replays it,
// as the engine's embedded mode does for a key on disk only
// (engine.TestOldKeyAboveLoweredLimitReplays). A new key above the
// lowered limit is still refused invalid_request and buys nothing.
func TestReplayAboveLoweredLimitOnAnotherNode(t *testing.T) {
	engines, stores := twoNodes(t, 0)
	ctx := t.Context()
	id, name, stock, limit := "replay-lowered", "Replay lowered", int64(10), int64(3)
	if _, err := engines[0].CreateSale(ctx, surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })

	buy := func(node int, key string, qty int64) (surge.Outcome, error) {
		return engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: surge.Purchase{UserID: "u1", IdempotencyKey: key, Quantity: qty}})
	}
	first, err := buy(0, "K", 3)
	if err != nil || first.Code != surge.CodeReserved || first.Replay {
		t.Fatalf("first purchase on node 0: %+v, %v", first, err)
	}
	if _, err := engines[0].UpdateSale(ctx, id, surge.SalePatch{PerUserLimit: new(int64(1))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "node 1 follows the lowered limit", func() error {
		if st, _ := engines[1].Sale(id); st.PerUserLimit != 1 {
			return fmt.Errorf("node 1 shows per_user_limit %d", st.PerUserLimit)
		}
		return nil
	})
	if _, ks := stores[1].LookupKey(id, "u1", "K"); ks != surge.KeyUnknown {
		t.Fatalf("node 1's LookupKey of K: %v, want KeyUnknown (node 1 never saw K)", ks)
	}

	out, err := buy(1, "K", 3)
	if err != nil || out.Code != surge.CodeReserved || !out.Replay || out.Order.ID != first.Order.ID {
		t.Fatalf("K retried on node 1 above the lowered limit: %+v, %v; want the replay of %s", out, err, first.Order.ID)
	}
	if out.Order.Quantity != 3 {
		t.Errorf("replayed order: %+v, want quantity 3", out.Order)
	}
	// Node 1 now knows K (it confirmed the replay): answered again, alike.
	if again, err := buy(1, "K", 3); err != nil || !again.Replay || again.Order.ID != first.Order.ID {
		t.Errorf("K retried again on node 1: %+v, %v", again, err)
	}
	// A new key above the lowered limit: refused as validation says, and
	// nothing reserved.
	if out, err := buy(1, "K2", 3); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("a new key above the lowered limit on node 1: %+v, %v; want invalid_request", out, err)
	}
	if out, err := buy(0, "K3", 3); !surge.HasCode(err, surge.CodeInvalid) {
		t.Errorf("a new key above the lowered limit on node 0: %+v, %v; want invalid_request", out, err)
	}
	if rem, err := stores[1].Remaining(ctx, id); err != nil || rem != stock-3 {
		t.Errorf("remaining after the retries: %d, %v; want %d", rem, err, stock-3)
	}
}
