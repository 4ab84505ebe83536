package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// rowWaits finds the sessions that wait for a lock behind one of ours:
// the holder's, then each found so far (a second waiter for a row waits
// for the first). Other tests' sessions, in other schemas, never block
// ours.
type rowWaits struct {
	t    *testing.T
	conn *pgx.Conn
	ours []int32
}

func newRowWaits(t *testing.T, ns string, holder int32) *rowWaits {
	return &rowWaits{t: t, conn: servicetest.Conn(t, ns), ours: []int32{holder}}
}

// found tells whether a session running a statement like pattern waits,
// and if so counts it as ours.
func (w *rowWaits) found(pattern string) (bool, error) {
	var pid int32
	err := w.conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pg_blocking_pids(pid) && $2::int[]`, pattern, w.ours).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	w.ours = append(w.ours, pid)
	return true, nil
}

// wait waits until a session running a statement like pattern waits.
func (w *rowWaits) wait(what, pattern string) {
	w.t.Helper()
	eventually(w.t, 10*time.Second, what+" waits for the sale row", func() error {
		if ok, err := w.found(pattern); !ok {
			return fmt.Errorf("not yet (%v)", err)
		}
		return nil
	})
}

// leaderAndOther opens two nodes over ns that run no round but the test's
// (each loop runs once, at Open), the first leading, and sale (10 units)
// that the leader's first round has seen.
func leaderAndOther(t *testing.T, ns, sale string) (leader, other *cluster.Store) {
	t.Helper()
	leader = openStore(t, ns, cluster.Config{NodeID: "leader", Interval: time.Hour, LeaseTTL: time.Minute})
	eventuallyLeads(t, leader, 10*time.Second, "the leader leads")
	other = openStore(t, ns, cluster.Config{NodeID: "other", Interval: time.Hour, LeaseTTL: time.Minute})
	t.Cleanup(func() { other.Close(); leader.Close() })
	mustSale(t, other, sale, 10, 10)
	if !cluster.Round(context.Background(), leader) {
		t.Fatal("the leader could not take the lease")
	}
	return leader, other
}

// holdSaleRow locks sale id's row in a transaction of a connection of its
// own (rolled back at the test's end unless committed), and returns it
// with the waits it sees behind that row.
func holdSaleRow(t *testing.T, ns, id string) (pgx.Tx, *rowWaits) {
	t.Helper()
	ctx := context.Background()
	lock := servicetest.Conn(t, ns)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM sales WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	var holder int32
	if err := lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	return tx, newRowWaits(t, ns, holder)
}

// roundOrRebuildWaits waits until the round in flight either ends, whose
// result it returns, or rebuilds and waits for the held sale row (nil).
func roundOrRebuildWaits(t *testing.T, round <-chan bool, waits *rowWaits) *bool {
	t.Helper()
	var ended *bool
	eventually(t, 10*time.Second, "the round ends or its rebuild waits for the sale row", func() error {
		select {
		case ok := <-round:
			ended = &ok
			return nil
		default:
		}
		if ok, err := waits.found("%epoch = epoch + 1%"); !ok {
			return fmt.Errorf("neither yet (%v)", err)
		}
		return nil
	})
	return ended
}

// buyBehindHeldRow makes a purchase on buyer of sale "flip" queue behind
// the held sale row (after the round's rebuild, if it waits there too),
// releases the row, and returns the purchase's outcome, an outcome's
// error as its error.
func buyBehindHeldRow(t *testing.T, buyer *cluster.Store, tx pgx.Tx, waits *rowWaits) ([]surge.Outcome, error) {
	t.Helper()
	type result struct {
		out []surge.Outcome
		err error
	}
	bought := make(chan result, 1)
	go func() {
		out, _, err := reserve(buyer, "flip", surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1})
		bought <- result{out, err}
	}()
	waits.wait("the buyer's insert", "%surge_insert_orders%")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-bought
	if r.err == nil && r.out[0].Err != nil {
		r.err = r.out[0].Err
	}
	return r.out, r.err
}

// keptLease fails the test if the round, ended (non-nil) or still in
// flight on round, lost the lease.
func keptLease(t *testing.T, ended *bool, round <-chan bool) {
	t.Helper()
	if ended == nil {
		ok := <-round
		ended = &ok
	}
	if !*ended {
		t.Error("the round lost the lease")
	}
}

// TestRoundAcrossChangeKeepsItsEpoch: a leader's round that listed a sale
// before an operator's change (PATCH) of it and read Redis after the
// change installed its new epoch took Redis's epoch for a stale one
// (diagnose: "Redis holds epoch 2, PostgreSQL 1"), rebuilt the sale under
// yet another epoch and so fenced off the purchases another node had just
// decided against the change's state: a purchase right after the PATCH's
// 200 answered 503 "the sale's live stock is being rebuilt"
// (TestHoldChangeBindsEveryNode failed so under load). The row lock orders
// it here: the change is made while the round waits after its listing,
// then the round's rebuild and the buyer's insert queue for the sale row
// in that order.
func TestRoundAcrossChangeKeepsItsEpoch(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	leader, buyer := leaderAndOther(t, ns, "flip")

	listed, goOn := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cluster.AfterListing(leader, func() { once.Do(func() { close(listed); <-goOn }) })
	round := make(chan bool, 1)
	go func() { round <- cluster.Round(ctx, leader) }()
	<-listed
	// The change is answered (its epoch installed) while the round holds
	// the listing it made before it.
	if _, err := buyer.UpdateSale(ctx, "flip", surge.SalePatch{HoldSeconds: new(int64(120))}, surge.At(time.Now())); err != nil {
		t.Fatalf("change: %v", err)
	}
	tx, waits := holdSaleRow(t, ns, "flip")
	close(goOn)
	// The round either rebuilds, and waits for the row, or ends.
	ended := roundOrRebuildWaits(t, round, waits)
	if out, err := buyBehindHeldRow(t, buyer, tx, waits); err != nil || out[0].Code != surge.CodeReserved {
		t.Errorf("a purchase decided against the change's epoch, right after its answer: %+v, %v; want reserved", out, err)
	}
	keptLease(t, ended, round)
}

// TestRoundAcrossInstallInFlightKeepsItsEpoch: a leader's round that read
// a sale while an operator's change (PATCH) of it had committed its new
// epoch in PostgreSQL but not yet installed that epoch's state in Redis
// found Redis at the older epoch ("Redis holds epoch 1, PostgreSQL 2"),
// and PostgreSQL still at the epoch it diagnosed, so it rebuilt the sale
// under yet another epoch: the change's install then landed, the change
// was answered, and a purchase decided against the change's state right
// after its 200 answered 503 "the sale's live stock is being rebuilt". The
// round runs here while the install is held, and the row lock orders the
// round's rebuild, if it makes one, before the buyer's insert.
func TestRoundAcrossInstallInFlightKeepsItsEpoch(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	leader, buyer := leaderAndOther(t, ns, "flip")

	var (
		tx    pgx.Tx
		waits *rowWaits
		ended *bool
		once  sync.Once
	)
	round := make(chan bool, 1)
	cluster.BeforeInstall(buyer, func() {
		once.Do(func() {
			// The change's epoch is committed, its state not in Redis yet:
			// the leader's round runs now. Its rebuild, if it makes one,
			// waits for the sale row the test holds.
			tx, waits = holdSaleRow(t, ns, "flip")
			go func() { round <- cluster.Round(ctx, leader) }()
			ended = roundOrRebuildWaits(t, round, waits)
		})
	})
	if _, err := buyer.UpdateSale(ctx, "flip", surge.SalePatch{HoldSeconds: new(int64(120))}, surge.At(time.Now())); err != nil {
		t.Fatalf("change: %v", err)
	}
	if tx == nil {
		t.Fatal("the change installed no new epoch")
	}
	// Right after the change's answer, a purchase on the node that made it.
	if out, err := buyBehindHeldRow(t, buyer, tx, waits); err != nil || out[0].Code != surge.CodeReserved {
		t.Errorf("a purchase right after the change's answer: %+v, %v; want reserved", out, err)
	}
	keptLease(t, ended, round)
}

// TestRebuildOutlivingItsTermKeepsItsEpoch: a leader's rebuild that
// outlived the lease's term (a sale with many orders; the lease is
// renewed only between rounds) had the next leader find Redis behind
// PostgreSQL's new epoch, the rebuild's, and start the rebuild over under
// yet another: the first rebuild's install then landed, fenced off, and
// purchases answered 503 "the sale's live stock is being rebuilt" until
// the second's did, which the next change of leader would start over in
// turn, for as long as rebuilds lasted longer than a term. The first
// rebuild is held here, its epoch committed, until the second node leads
// and has run a round (or its rebuild is held too).
func TestRebuildOutlivingItsTermKeepsItsEpoch(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	// No round but the test's: each node's loop runs once, at Open.
	first := openStore(t, ns, cluster.Config{NodeID: "first", Interval: time.Hour, LeaseTTL: time.Second})
	eventuallyLeads(t, first, 10*time.Second, "the first node leads")
	second := openStore(t, ns, cluster.Config{NodeID: "second", Interval: time.Hour, LeaseTTL: time.Second})
	t.Cleanup(func() { second.Close(); first.Close() })
	mustSale(t, first, "long", 10, 10)
	if !cluster.Round(ctx, first) {
		t.Fatal("the first node could not take the lease")
	}
	// Redis lost the sale's state: the next round rebuilds it.
	rc := dialRedis(t)
	keys, err := rc.Keys(ctx, ns+":{long}:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("the sale's keys: %v %v", keys, err)
	}
	if err := rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}

	held, goOn := make(chan struct{}), make(chan struct{})
	var heldOnce sync.Once
	cluster.BeforeInstall(second, func() { heldOnce.Do(func() { close(held) }); <-goOn })
	secondRound := make(chan bool, 1)
	var once sync.Once
	cluster.BeforeInstall(first, func() {
		once.Do(func() {
			// The first rebuild's epoch is committed; its term runs out.
			deadline := time.Now().Add(10 * time.Second)
			for {
				go func() { secondRound <- cluster.Round(ctx, second) }()
				select {
				case <-held:
					return // the second node rebuilds the sale too
				case led := <-secondRound:
					if led {
						return // the second node led a round
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the second node never led")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	})
	cluster.Round(ctx, first)
	err = buyOnce(first, "long", "alice")
	close(goOn)
	select {
	case <-held:
		<-secondRound
	default:
	}
	if err != nil {
		t.Errorf("a purchase once the first rebuild is installed: %v; want reserved", err)
	}
}
