package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// purchaseErr is what one purchase of a batch was answered: the batch's
// error, or its own.
func purchaseErr(out []surge.Outcome, err error, i int) error {
	if err != nil {
		return err
	}
	return out[i].Err
}

// TestCommitFailedKeylessMessage: a batch whose PostgreSQL commit failed
// told its buyers to "retry with the same Idempotency-Key", also those
// who sent none.
func TestCommitFailedKeylessMessage(t *testing.T) {
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	cfg := cluster.Config{Prefix: ns, Schema: ns}
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable", cfg)
	defer s.Close()
	sl := mustSale(t, s, "pg-cut", 10, 1)

	px.Cut()
	out, _, err := reserve(s, sl.ID, surge.Purchase{UserID: "u1", Quantity: 1})
	px.Restore()
	var se *surge.Error
	if err := purchaseErr(out, err, 0); !errors.As(err, &se) || se.Code != surge.CodeUnavailable {
		t.Fatalf("purchase: %v, want 503 unavailable", err)
	}
	if strings.Contains(se.Message, "Idempotency-Key") {
		t.Errorf("the buyer who sent no Idempotency-Key was told %q", se.Message)
	}
}

// TestCommitLandedAfterTimeout: an insert cut off from its node (the
// node's call timed out, and its cancel request could not reach
// PostgreSQL) still commits once it gets the sale row it waited for. The
// buyer was told 503 and to wait for the leader to reconcile (about
// ConfirmAfter, 11 s) an order that was in fact durable. The node waits
// for the insert in flight to end and answers what it did.
func TestCommitLandedAfterTimeout(t *testing.T) {
	ctx := context.Background()
	px := servicetest.NewProxy(t, "127.0.0.1:5432")
	ns := namespace(t)
	cfg := cluster.Config{Prefix: ns, Schema: ns, CallTimeout: 2 * time.Second}
	s := openStoreAt(t, redisURL(), "postgres://postgres@"+px.Addr+"/test?sslmode=disable", cfg)
	defer s.Close()
	sl := mustSale(t, s, "slow", 10, 1)
	// A few connections in the pool, open before new ones are refused.
	warm := mustSale(t, s, "warm", 10, 1)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, _, err := reserve(s, warm.ID, surge.Purchase{UserID: fmt.Sprint("w", i), Quantity: 1}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	buy := surge.Purchase{UserID: "u1", IdempotencyKey: "k1", Quantity: 1}

	lock := servicetest.Conn(t, ns)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sales WHERE id = $1 FOR UPDATE`, sl.ID); err != nil {
		t.Fatal(err)
	}
	var holder int32
	if err := lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		out []surge.Outcome
		err error
	}
	done := make(chan answer, 1)
	go func() {
		out, _, err := reserve(s, sl.ID, buy)
		done <- answer{out, err}
	}()
	// waiter is the pid of a session of this test's schema waiting for a
	// lock that one of ours holds, running a statement like pattern.
	look := servicetest.Conn(t, ns)
	waiter := func(pattern string, ours []int32) (pid int32, err error) {
		err = look.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pg_blocking_pids(pid) && $2::int[]`, pattern, ours).Scan(&pid)
		return pid, err
	}
	var insert int32
	eventually(t, 10*time.Second, "the insert waits for the sale row", func() (err error) {
		insert, err = waiter("%surge_insert_orders%", []int32{holder})
		return err
	})
	// The node's path to PostgreSQL takes no new connection: its cancel
	// request on the timeout does not get through.
	px.Refuse()
	// Let the insert go once the node has given up on it: it answered, or
	// it waits behind the insert to see how the insert ended (a row lock
	// taken FOR SHARE; the leader's own statements take others).
	var got answer
	answered := false
	eventually(t, 10*time.Second, "the node gives up on the insert", func() error {
		select {
		case got = <-done:
			answered = true
			return nil
		default:
		}
		_, err := waiter("%FOR SHARE%", []int32{holder, insert})
		return err
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !answered {
		got = <-done
	}
	px.Restore()
	// The insert did land.
	eventually(t, 5*time.Second, "the order is in PostgreSQL", func() error {
		var n int
		if err := look.QueryRow(ctx, `SELECT count(*) FROM orders WHERE sale_id = $1`, sl.ID).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return errors.New("no order yet")
		}
		return nil
	})
	if err := purchaseErr(got.out, got.err, 0); err != nil {
		var se *surge.Error
		errors.As(err, &se)
		ra := time.Duration(0)
		if se != nil {
			ra = se.RetryAfter
		}
		t.Fatalf("the purchase whose order PostgreSQL committed was answered %v (Retry-After %v); want it reserved", err, ra)
	}
	if o := got.out[0]; o.Code != surge.CodeReserved || o.Order.ID == "" {
		t.Fatalf("outcome %+v, want reserved", o)
	}
}
