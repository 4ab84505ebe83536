package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// An Idempotency-Key reused with another quantity is another request:
// 422 idempotency_mismatch, not a replay of the first answer (issue 9,
// item 8), in the first's batch or a later one; the same quantity replays.
func TestKeyReusedWithOtherQuantity(t *testing.T) {
	cases := []struct {
		name      string
		sameBatch bool
		retry     int64
		mismatch  bool
	}{
		{"LaterSameQuantity", false, 1, false},
		{"LaterOtherQuantity", false, 2, true},
		{"SameBatchSameQuantity", true, 1, false},
		{"SameBatchOtherQuantity", true, 2, true},
	}
	ns := namespace(t)
	s := openStore(t, ns, cluster.Config{})
	defer s.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sl := mustSale(t, s, tc.name, 10, 3)
			first := surge.Purchase{UserID: "a", IdempotencyKey: "k", Quantity: 1}
			retry := surge.Purchase{UserID: "a", IdempotencyKey: "k", Quantity: tc.retry}
			var outs []surge.Outcome
			var err error
			if tc.sameBatch {
				outs, _, err = reserve(s, sl.ID, first, retry)
			} else {
				var o1 []surge.Outcome
				if o1, _, err = reserve(s, sl.ID, first); err == nil {
					outs, _, err = reserve(s, sl.ID, retry)
					outs = append(o1, outs...)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if outs[0].Code != surge.CodeReserved || outs[0].Replay {
				t.Fatalf("first: %+v", outs[0])
			}
			got := outs[1]
			if tc.mismatch {
				if got.Code != surge.CodeIdempotencyMismatch || !surge.HasCode(got.Err, surge.CodeIdempotencyMismatch) {
					t.Errorf("retry with %d units: %+v, want idempotency_mismatch", tc.retry, got)
				}
			} else if got.Code != surge.CodeReserved || !got.Replay || got.Order.ID != outs[0].Order.ID || got.Err != nil {
				t.Errorf("retry: %+v, want a replay of %s", got, outs[0].Order.ID)
			}
			if rem, err := s.Remaining(context.Background(), sl.ID); err != nil || rem != 9 {
				t.Errorf("remaining %d, %v; want 9: a mismatch takes no units", rem, err)
			}
		})
	}
}

// A hold past expires_at is expired for Pay and Cancel, whether or not
// the leader's expiry has run yet (issue 9, item 11).
func TestPayCancelAfterHoldEnded(t *testing.T) {
	ns := namespace(t)
	// No expiry job: it would expire the holds before Pay and Cancel ask.
	s := openStore(t, ns, cluster.Config{NoExpiry: true})
	defer s.Close()
	ctx := context.Background()
	id, name, stock, limit, hold := "held", "held", int64(10), int64(5), int64(60)
	start := time.Now().Add(-time.Hour)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &start, HoldSeconds: &hold}, start)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSale(ctx, sl); err != nil {
		t.Fatal(err)
	}
	// Reserved two minutes ago with a one-minute hold; Pay and Cancel are
	// asked at expires_at, before any expiry ran.
	outs, _, err := s.Reserve(ctx, sl.ID, []surge.Purchase{{UserID: "a", Quantity: 1}, {UserID: "b", Quantity: 1}}, surge.At(time.Now().Add(-2*time.Minute)))
	if err != nil || outs[0].Code != surge.CodeReserved || outs[1].Code != surge.CodeReserved {
		t.Fatalf("reserve: %+v, %v", outs, err)
	}
	now := outs[0].Order.ExpiresAt
	if _, err := s.Pay(ctx, outs[0].Order.ID, now); !surge.HasCode(err, surge.CodeNotPayable) {
		t.Errorf("pay at expires_at: %v, want not_payable", err)
	}
	if _, err := s.Cancel(ctx, outs[1].Order.ID, now); !surge.HasCode(err, surge.CodeNotCancellable) {
		t.Errorf("cancel at expires_at: %v, want not_cancellable", err)
	}
	if o, err := s.Pay(ctx, outs[0].Order.ID, now.Add(-time.Millisecond)); err != nil || o.Status != surge.OrderPaid {
		t.Errorf("pay before expires_at: %+v, %v; want paid", o, err)
	}
}
