package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestReleaseBoundedWhilePostgresStalls: a cancel, or the leader's expiry,
// ended an order in PostgreSQL, and Redis then stalled, so the units could
// not go back there; PostgreSQL stalls too (every connection open, no byte
// through) before the node marks the sale for a rebuild and announces it.
// Those two statements are bounded by the call timeout like every other
// one: the cancel and the expiry pass return instead of hanging for as
// long as PostgreSQL does (and with the expiry pass the leader's jobs,
// every later hold's expiry among them, and the node's Close, which
// waits for them).
func TestReleaseBoundedWhilePostgresStalls(t *testing.T) {
	for _, path := range []string{"cancel", "expiry"} {
		t.Run(path, func(t *testing.T) {
			const callTimeout = 500 * time.Millisecond
			pgp := servicetest.NewProxy(t, "127.0.0.1:5432")
			rp := servicetest.RedisProxy(t)
			ns := namespace(t)
			s := openStoreAt(t, "redis://"+rp.Addr+"/0", "postgres://postgres@"+pgp.Addr+"/test?sslmode=disable",
				cluster.Config{Prefix: ns, Schema: ns, NoExpiry: true, Interval: time.Hour, CallTimeout: callTimeout})
			db := servicetest.Conn(t, ns)
			id, name, stock, hold, start := "s", "S", int64(3), int64(3600), time.Now().Add(-3*time.Hour)
			sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, HoldSeconds: &hold}, start)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSale(t.Context(), sl); err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			if path == "expiry" {
				at = at.Add(-2 * time.Hour) // its hold ended an hour ago
			}
			out, _, err := s.Reserve(t.Context(), "s", []surge.Purchase{{UserID: "u", Quantity: 1}}, surge.At(at))
			if err != nil || out[0].Code != surge.CodeReserved {
				t.Fatalf("reserve: %+v %v", out, err)
			}
			order := out[0].Order.ID

			rp.Pause()
			defer rp.Resume()
			done := make(chan time.Duration, 1)
			began := time.Now()
			go func() {
				if path == "cancel" {
					_, _ = s.Cancel(context.Background(), order, time.Now())
				} else {
					_, _ = s.Expire(context.Background(), time.Now())
				}
				done <- time.Since(began)
			}()
			// Once the order has ended in PostgreSQL (the node now waits
			// on Redis to give its unit back), PostgreSQL stalls as well.
			want := map[string]string{"cancel": "cancelled", "expiry": "expired"}[path]
			eventually(t, 5*time.Second, "the order ends in PostgreSQL", func() error {
				var status string
				if err := db.QueryRow(t.Context(), `SELECT status FROM orders WHERE id = $1`, order).Scan(&status); err != nil {
					return err
				}
				if status != want {
					return errStatus(status)
				}
				return nil
			})
			pgp.Pause()
			const stalled = 8 * time.Second
			// Redis's release, marking the sale dirty, announcing it:
			// a call timeout each, and room for a loaded machine.
			bound := 3*callTimeout + 2*time.Second
			select {
			case took := <-done:
				t.Logf("the %s returned after %v while PostgreSQL stalled", path, took.Round(time.Millisecond))
				if took > bound {
					t.Errorf("the %s returned after %v while PostgreSQL stalled, want within %v", path, took.Round(time.Millisecond), bound)
				}
				pgp.Resume()
			case <-time.After(stalled):
				pgp.Resume()
				took := <-done
				t.Errorf("the %s returned only after %v, once PostgreSQL answered again (stalled for %v): it waited on PostgreSQL without the call timeout (%v); want it back within %v",
					path, took.Round(time.Millisecond), stalled, callTimeout, bound)
			}
		})
	}
}

type errStatus string

func (e errStatus) Error() string { return "status " + string(e) }
