package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
)

// TestInstallRefusesLostStaging: an install (a rebuild, a sale's change)
// writes the new state to staging keys, then swaps them in. Redis lost
// them in between, or part of them (restarted empty, the keys evicted, a
// FLUSHALL, a replica behind promoted), and the swap put in place
// buyers', keys' and held orders' hashes missing entries, with the
// sentinels that say nothing was lost, under a sale's count of units
// left: a buyer's retry of a confirmed key was answered sold_out, a buyer
// at the limit bought again, and a cancel gave no unit back. The swap
// must refuse staging that is not whole, so the install fails and is made
// again.
func TestInstallRefusesLostStaging(t *testing.T) {
	for _, c := range []struct {
		name  string
		lost  func(key string) bool // the keys of the sale Redis loses
		field string                // the field of them it loses ("": the whole key)
	}{
		{"RestartedEmpty", func(string) bool { return true }, ""},
		{"StagingEvicted", func(key string) bool { return strings.Contains(key, ":s2:") }, ""},
		{"StagedKeyLostInPart", func(key string) bool { return strings.HasSuffix(key, ":s2:k") }, "alice\nk1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st, l, rc, ns := newSale(t, 2, 1) // epoch 1, nothing sold
			sale := surge.Sale{ID: l.Sale, Stock: 2, PerUserLimit: 1, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
			now := time.Now().UTC().Truncate(time.Millisecond)
			o1 := surge.Order{ID: "o1", SaleID: l.Sale, UserID: "alice", Quantity: 1, Status: surge.OrderReserved,
				IdempotencyKey: "k1", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
			o2 := surge.Order{ID: "o2", SaleID: l.Sale, UserID: "bob", Quantity: 1, Status: surge.OrderReserved,
				IdempotencyKey: "k2", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
			snap := surge.LiveState{Sale: sale, Buckets: 1, Epoch: 2, Ever: 2,
				Live: []surge.Order{o1, o2}, Keyed: []surge.Order{o1, o2}}
			// Redis loses the keys after each step of the install up to
			// the swap, the last one included: right before it.
			lose := func() {
				if e, _ := rc.HGet(ctx, ns+":{"+l.Sale+"}:m", "epoch").Result(); e == "2" {
					return // swapped in
				}
				keys, err := rc.Keys(ctx, ns+":*").Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					switch {
					case !c.lost(k):
					case c.field == "":
						rc.Del(ctx, k)
					default:
						rc.HDel(ctx, k, c.field)
					}
				}
			}
			installed, err := st.Install(ctx, snap, false, lose)
			t.Logf("install: installed %v, err %v", installed, err)

			// alice retries k1, whose order is durable: its replay, or the
			// state missing (the leader rebuilds it), never another answer.
			res, err := st.Reserve(ctx, l, redis.Batch{Now: time.Now(), Expires: time.Now().Add(time.Minute), IDs: []string{"o3"},
				Purchases: []surge.Purchase{{UserID: "alice", IdempotencyKey: "k1", Quantity: 1}}})
			switch {
			case errors.Is(err, redis.ErrNoState):
			case err != nil:
				t.Fatalf("alice's retry: %v", err)
			case res.Epoch == 2 && (res.Decisions[0].Code != surge.CodeReserved || res.Decisions[0].Replay.ID != o1.ID):
				t.Errorf("alice's retry of k1 in epoch 2 answered %s (replay %q), want the replay of %s",
					res.Decisions[0].Code, res.Decisions[0].Replay.ID, o1.ID)
			}
			if installed && err == nil && res.Epoch == 2 {
				// The install claims epoch 2 is in place: it must be whole.
				if _, taken, err := st.Inspect(ctx, l); err != nil || taken < 2 {
					t.Errorf("the installed state: taken %d, %v", taken, err)
				}
			}
		})
	}
}
