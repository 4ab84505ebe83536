package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestCallTimeoutBoundsStalledRedis: the call timeout bounds a Redis call
// whatever the URL's read_timeout (docs/cluster.md, Timeouts). With
// ?read_timeout=5s in the URL, a purchase while Redis stalls (every
// connection open, no byte through) is answered 503 after about the call
// timeout, not after the read timeout: go-redis ignores a context's
// deadline on the socket unless the client is told to honour it.
func TestCallTimeoutBoundsStalledRedis(t *testing.T) {
	const (
		callTimeout = 500 * time.Millisecond
		readTimeout = 5 * time.Second
	)
	rp := servicetest.RedisProxy(t)
	ns := namespace(t)
	s := openStoreAt(t, "redis://"+rp.Addr+"/0?read_timeout="+readTimeout.String(), postgresURL(),
		cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour, CallTimeout: callTimeout})
	defer s.Close()
	sl := mustSale(t, s, "stall", 10, 1)
	// A purchase first, so its connection is pooled and the stalled one
	// below waits on a read, not a dial.
	if out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u0", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("purchase before the stall: %+v %v", out, err)
	}

	rp.Pause()
	defer rp.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 3*readTimeout)
	defer cancel()
	began := time.Now()
	_, _, err := s.Reserve(ctx, sl.ID, []surge.Purchase{{UserID: "u1", Quantity: 1}}, surge.At(time.Now()))
	took := time.Since(began)
	t.Logf("the purchase was answered after %v while Redis stalled: %v", took.Round(time.Millisecond), err)
	// The call timeout, and room for a loaded machine: well short of the
	// read timeout.
	wantUnavailable(t, "purchase while Redis stalls", err, took, callTimeout+2*time.Second)

	// The connection the call gave up on is not reused: the stalled
	// script's late reply must not answer a later call.
	rp.Resume()
	eventually(t, 15*time.Second, "a purchase once Redis answers again", func() error {
		out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u2", IdempotencyKey: "k2", Quantity: 1})
		if err != nil {
			return err
		}
		if out[0].Code != surge.CodeReserved || out[0].Order.UserID != "u2" {
			t.Fatalf("purchase once Redis answers again: %+v, want u2's reservation", out[0])
		}
		return nil
	})
}
