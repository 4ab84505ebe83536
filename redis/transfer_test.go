package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/surgehq/surge"
	"github.com/surgehq/surge/redis"
)

// beforeGive is a client hook that runs fn once, just before the first
// call of the second half of a transfer between buckets (give.lua: the
// one script called with two keys, the second a bucket's received
// transfers "…:xi"), as another node's work would land between the
// transfer's two scripts.
type beforeGive struct{ fn func() }

func (h *beforeGive) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *beforeGive) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		a := cmd.Args()
		if h.fn != nil && len(a) >= 5 && fmt.Sprint(a[0]) == "evalsha" && fmt.Sprint(a[2]) == "2" && strings.HasSuffix(fmt.Sprint(a[4]), ":xi") {
			fn := h.fn
			h.fn = nil
			fn()
		}
		return next(ctx, cmd)
	}
}

func (h *beforeGive) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// drainBucket0 has a buyer of bucket 0 reserve its 50 units (of twoBuckets'
// 100) and returns that order, as PostgreSQL would hold it.
func drainBucket0(t *testing.T, st *redis.Stock, l redis.Layout) surge.Order {
	t.Helper()
	u := ""
	for i := 0; u == ""; i++ {
		if c := fmt.Sprintf("u%d", i); l.Bucket(c) == 0 {
			u = c
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	b := redis.Batch{Purchases: []surge.Purchase{{UserID: u, Quantity: 50}}, IDs: []string{"o0"}, Now: now, Expires: now.Add(time.Minute)}
	res, err := st.Reserve(context.Background(), l, b)
	if err != nil || res.Decisions[0].Code != surge.CodeReserved {
		t.Fatalf("draining bucket 0: %+v %v", res, err)
	}
	return surge.Order{ID: "o0", SaleID: l.Sale, UserID: u, Quantity: 50, Status: surge.OrderReserved, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
}

// TestTransferAcrossNewEpoch: a node moves units between two buckets of a
// sale (Rebalance: the donor's script, then the recipient's) while another
// node installs a new epoch of the sale (an operator's PATCH, or the
// leader's rebuild), which splits PostgreSQL's free stock anew over every
// bucket. The units the donor gave belonged to the old epoch; the new
// epoch already counts them in its split. Landing in the new epoch's
// recipient, they are units PostgreSQL does not have: Redis then sells
// them, PostgreSQL refuses the batch that takes them (every buyer in it
// answered 503) and the sale is rebuilt.
func TestTransferAcrossNewEpoch(t *testing.T) {
	ctx := context.Background()
	c, st, l, _ := twoBuckets(t, 50)
	o := drainBucket0(t, st, l)
	sale := surge.Sale{ID: "s1", Stock: 100, PerUserLimit: 50, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
	hook := &beforeGive{fn: func() {
		// Epoch 2 from PostgreSQL's truth: 100 units, 50 held by o0.
		if ok, err := st.Install(ctx, surge.LiveState{Sale: sale, Buckets: 2, Epoch: 2, Ever: 50, Live: []surge.Order{o}}, false, nil); err != nil || !ok {
			t.Errorf("install epoch 2: %v %v", ok, err)
		}
	}}
	c.AddHook(hook)
	moved, err := st.Rebalance(ctx, l, 0, 1, []int64{0, 50})
	if err != nil {
		t.Fatal(err)
	}
	if hook.fn != nil {
		t.Fatalf("the transfer never ran its second half (moved %d)", moved)
	}
	rem, _, err := st.Totals(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if rem != 50 {
		t.Errorf("a transfer of %d units from bucket 1 to bucket 0 straddled the install of epoch 2 (100 units, 50 held): "+
			"the live state offers %d units, want 50: the units the old epoch's donor gave were added to the new epoch's recipient, "+
			"%d units PostgreSQL does not have", moved, rem, rem-50)
	}
}

// beforeSwap is a client hook that runs fn once, just before the install
// script swaps in the state of the bucket whose meta key is meta (the one
// script called with ten keys), as another node's work would land
// between two buckets of one install.
type beforeSwap struct {
	meta string
	fn   func()
}

func (h *beforeSwap) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *beforeSwap) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		a := cmd.Args()
		if h.fn != nil && len(a) >= 4 && fmt.Sprint(a[0]) == "evalsha" && fmt.Sprint(a[2]) == "10" && fmt.Sprint(a[3]) == h.meta {
			fn := h.fn
			h.fn = nil
			fn()
		}
		return next(ctx, cmd)
	}
}

func (h *beforeSwap) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestTransferIntoBucketNotYetInstalled: an install of a new epoch (an
// operator's PATCH, a rebuild) has swapped in bucket 0 and not yet bucket
// 1 when a node moves units from bucket 0 to bucket 1. The recipient, of
// the old epoch, rightly refuses units of the new one (give.lua), and the
// donor keeps the transfer's record; but nothing completed it until the
// leader's repair of transfers older than --cluster-confirm-after (10 s):
// the units were off sale that long once the install had ended (a sale
// down to its last units answered sold out with them).
func TestTransferIntoBucketNotYetInstalled(t *testing.T) {
	ctx := context.Background()
	c, st, l, ns := twoBuckets(t, 100)
	sale := surge.Sale{ID: "s1", Stock: 100, PerUserLimit: 100, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 120}
	var moved int64
	hook := &beforeSwap{meta: ns + ":{s1#1}:m", fn: func() {
		var err error
		// Bucket 0 holds epoch 2's 50 units, bucket 1 epoch 1's 50.
		if moved, err = st.Rebalance(ctx, l, 1, 1, []int64{50, 0}); err != nil {
			t.Errorf("rebalance: %v", err)
		}
	}}
	c.AddHook(hook)
	if ok, err := st.Install(ctx, surge.LiveState{Sale: sale, Buckets: 2, Epoch: 2}, false, nil); err != nil || !ok {
		t.Fatalf("install epoch 2: %v %v", ok, err)
	}
	if hook.fn != nil || moved == 0 {
		t.Fatalf("no transfer ran between the two buckets' swaps (moved %d)", moved)
	}
	rem, _, err := st.Totals(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if rem != 100 {
		t.Errorf("once the install of epoch 2 (100 units, none held) has ended, the live state offers %d units, want 100: "+
			"the %d units bucket 0 gave to bucket 1 before bucket 1 had the epoch are off sale until the leader's repair", rem, moved)
	}
}
