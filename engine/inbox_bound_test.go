package engine

import (
	"context"
	"testing"

	"github.com/surgehq/surge"
)

// TestInboxSizeBounded: an InboxSize beyond MaxInboxSize, from a config
// built in code, made each sale's inbox that large, allocated when the
// sale is created: 1<<40 ended the process ("fatal error: runtime: out of
// memory"), a smaller slip took gigabytes per sale. It is now capped.
func TestInboxSizeBounded(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.InboxSize = 1 << 40
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("big", 10, 1))
	if got := cap(e.lookup("big").inbox); got != MaxInboxSize {
		t.Errorf("the sale's inbox holds %d purchases; want MaxInboxSize (%d)", got, MaxInboxSize)
	}
}

// TestMaxBatchBounded: each sale's owner allocates buffers of MaxBatch
// requests and purchases up front, unbounded: MaxBatch 1<<40 ended the
// process at the first purchase ("fatal error: runtime: out of memory").
func TestMaxBatchBounded(t *testing.T) {
	cfg := testConfig(fixedClock())
	cfg.MaxBatch = 1 << 40
	e := openEngine(t, openStore(t, t.TempDir()), cfg)
	mustCreate(t, e, input("big", 10, 1))
	if _, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: "big", Purchase: surge.Purchase{UserID: "u", Quantity: 1}}); err != nil {
		t.Fatalf("purchase with MaxBatch 1<<40: %v; want it served", err)
	}
}
