package cluster_test

import (
	"errors"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestRetryAfterUnconfirmedPurchase: a purchase whose PostgreSQL commit
// failed keeps its units and its key in Redis until the leader reconciles
// it, which it does only once the reservation is ConfirmAfter old (10 s
// by default). Until then a retry with the same key cannot succeed (503,
// "still being committed"), yet both answers said Retry-After: 1: a
// client honouring it came back to a 503 again and again, and the Go
// client (5 attempts) gave up before the reconciliation. Each answer's
// Retry-After must reach the reconciliation.
//
// The commit must have been sent: one that provably never reached
// PostgreSQL (no connection to be had) gives its units back at once
// (TestPoolFullCommitGivesUnitsBack). A cut of every connection left that
// to the pool's timing (a connection idle over a second is pinged first,
// and then dialled anew, refused), so the insert itself is lost here, on
// a connection that carried it out of the node.
func TestRetryAfterUnconfirmedPurchase(t *testing.T) {
	const confirmAfter = 5 * time.Second
	const buyer = "victim-unconfirmed"
	px := newCutProxy(t, "127.0.0.1:5432", buyer)
	px.drop = true
	ns := namespace(t)
	cfg := cluster.Config{Prefix: ns, Schema: ns, Interval: 100 * time.Millisecond, ConfirmAfter: confirmAfter}
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+px.addr+"/test?sslmode=disable", cfg)
	defer s.Close()
	sl := mustSale(t, s, "pg-blip", 10, 1)
	buy := surge.Purchase{UserID: buyer, IdempotencyKey: "k1", Quantity: 1}

	before := time.Now()
	px.armed.Store(true)
	_, _, err := reserve(s, sl.ID, buy)
	if !px.fired.Load() {
		t.Fatalf("the proxy never lost the insert: %v", err)
	}
	// The earliest the leader can give the key back: the reservation was
	// made after before.
	soonest := func() time.Duration { return confirmAfter - time.Since(before) }
	retryAfter := func(err error) time.Duration {
		var se *surge.Error
		if !errors.As(err, &se) || se.Code != surge.CodeUnavailable {
			t.Fatalf("err %v, want 503 unavailable", err)
		}
		return se.RetryAfter
	}
	if ra, want := retryAfter(err), soonest(); ra < want {
		t.Errorf("the failed commit answered Retry-After %v; want at least %v, when the leader can first reconcile the purchase (a retry sooner gets 503 again)", ra, want.Round(time.Second))
	}
	// PostgreSQL answers (the pool dials past the lost connection), the
	// key is still held: the retry is refused.
	var out []surge.Outcome
	eventually(t, 3*time.Second, "a retry reaches PostgreSQL", func() (err error) {
		out, _, err = reserve(s, sl.ID, buy)
		return err
	})
	if out[0].Err == nil {
		t.Fatalf("retry at once: %+v; want 503 while the first purchase is unconfirmed", out[0])
	}
	if ra, want := retryAfter(out[0].Err), soonest(); ra < want {
		t.Errorf("the retry with the same key answered Retry-After %v (%v); want at least %v, when the leader can first reconcile the purchase", ra, out[0].Err, want.Round(time.Second))
	} else if ra > confirmAfter+2*time.Second {
		t.Errorf("the retry answered Retry-After %v; want about the %v left before the reconciliation", ra, want)
	}
	// The purchase does go through, once reconciled.
	eventually(t, 20*time.Second, "the retry with the same key buys", func() error {
		out, _, err := reserve(s, sl.ID, buy)
		if err != nil {
			return err
		}
		return out[0].Err
	})
}

// TestRetryAfterReplayCheckFailed: a retry whose key Redis replays, an
// order another node committed long ago, is confirmed against PostgreSQL;
// when that call fails, nothing of the batch waits for the leader's
// reconciliation (it reserved nothing, and the order it replays is older
// than the reconciliation's delay), yet the 503 said the Retry-After of a
// reservation made just now (ConfirmAfter and a leader round: 11 s by
// default). A client honouring it waited that long for nothing.
func TestRetryAfterReplayCheckFailed(t *testing.T) {
	ns := namespace(t)
	// The order is older than ConfirmAfter when the retry comes.
	const confirmAfter = 4 * time.Second
	a := openStore(t, ns, cluster.Config{NodeID: "a", ConfirmAfter: confirmAfter, NoExpiry: true})
	defer a.Close()
	sl := mustSale(t, a, "replay-check", 10, 1)
	// b starts before the purchase: it does not know the key.
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	b := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable",
		cluster.Config{Prefix: ns, Schema: ns, NodeID: "b", ConfirmAfter: confirmAfter, NoExpiry: true})
	defer b.Close()
	if _, err := b.Sale(t.Context(), sl.ID); err != nil {
		t.Fatal(err)
	}
	buy := surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1}
	out, _, err := reserve(a, sl.ID, buy)
	if err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("first purchase on a: %+v %v", out, err)
	}
	time.Sleep(confirmAfter + time.Second)

	px.Cut()
	_, _, err = reserve(b, sl.ID, buy)
	px.Restore()
	var se *surge.Error
	if !errors.As(err, &se) || se.Code != surge.CodeUnavailable {
		t.Fatalf("the retry on b with PostgreSQL cut: %v, want 503 unavailable", err)
	}
	if se.RetryAfter > 2*time.Second {
		t.Errorf("the retry on b, a replay whose check PostgreSQL failed, answered Retry-After %v (%v); want a second or two: nothing waits for the reconciliation", se.RetryAfter, err)
	}
}
