package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestTransferRepairDuringInstallKeepsRecord: as above, and the leader's
// repair of transfers runs while the install is half-way, bucket 1 still
// of epoch 1. The recipient refuses the units of epoch 2 again; the
// repair dropped the donor's record all the same, and with it the units,
// off sale for good: nothing else gives them back (the buckets gave more
// than they took, which no check looks for).
func TestTransferRepairDuringInstallKeepsRecord(t *testing.T) {
	ctx := context.Background()
	c, st, l, ns := twoBuckets(t, 100)
	sale := surge.Sale{ID: "s1", Stock: 100, PerUserLimit: 100, StartsAt: time.Now().Add(-time.Hour), HoldSeconds: 60}
	var moved int64
	hook := &beforeSwap{meta: ns + ":{s1#1}:m", fn: func() {
		var err error
		if moved, err = st.Rebalance(ctx, l, 1, 1, []int64{50, 0}); err != nil {
			t.Errorf("rebalance: %v", err)
		}
		if _, err := st.RepairTransfers(ctx, l, time.Now().Add(time.Minute)); err != nil {
			t.Errorf("repair: %v", err)
		}
	}}
	c.AddHook(hook)
	if ok, err := st.Install(ctx, surge.LiveState{Sale: sale, Buckets: 2, Epoch: 2}, false, nil); err != nil || !ok {
		t.Fatalf("install epoch 2: %v %v", ok, err)
	}
	if hook.fn != nil || moved == 0 {
		t.Fatalf("no transfer ran between the two buckets' swaps (moved %d)", moved)
	}
	if _, err := st.RepairTransfers(ctx, l, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rem, _, err := st.Totals(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if rem != 100 {
		t.Errorf("after the install of epoch 2 (100 units, none held) and another repair, the live state offers %d units, want 100: "+
			"the repair during the install dropped the record of the %d units bucket 0 gave", rem, moved)
	}
}
