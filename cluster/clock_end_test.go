package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/servicetest"
)

// TestEndNowEndsOnASlowerNode (cluster, two nodes whose clocks are 3 s
// apart): once an operator's end "now" on the node ahead is answered (the
// sale ended, its new epoch installed), a purchase on the node behind is
// refused ended, and still is once the leader has rebuilt the sale from
// PostgreSQL. Redis decided each batch at the clock of its node against the
// end the other node had read on its own: the node behind sold for 3 s
// more, committed under the new epoch, after the sale was answered ended.
func TestEndNowEndsOnASlowerNode(t *testing.T) {
	const skew = 3 * time.Second
	for _, rebuilt := range []bool{false, true} {
		what := "installed by the change"
		if rebuilt {
			what = "rebuilt by the leader"
		}
		t.Run(what, func(t *testing.T) {
			ns := namespace(t)
			ahead := openStore(t, ns, cluster.Config{NodeID: "ahead", Interval: 100 * time.Millisecond,
				Now: func() time.Time { return time.Now().Add(skew) }})
			t.Cleanup(func() { ahead.Close() })
			behind := openStore(t, ns, cluster.Config{NodeID: "behind", Interval: 100 * time.Millisecond})
			t.Cleanup(func() { behind.Close() })
			ctx := context.Background()
			id, name, stock := "end", "End", int64(10)
			start := time.Now().Add(-time.Minute)
			sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			createSale(t, ahead, sl)
			// The node behind has sold and knows the sale.
			if out, _, err := reserve(behind, id, surge.Purchase{UserID: "early", Quantity: 1}); err != nil || len(out) != 1 || out[0].Code != surge.CodeReserved {
				t.Fatalf("a purchase before the end: %+v, %v", out, err)
			}
			ended, err := ahead.UpdateSale(ctx, id, surge.SalePatch{EndNow: true}, surge.At(time.Now().Add(skew)))
			if err != nil || !ended.EndsAt.After(time.Now()) {
				t.Fatalf("end now on the node %v ahead: %+v, %v", skew, ended, err)
			}
			if rebuilt {
				db := servicetest.Conn(t, ns)
				var epoch int64
				if err := db.QueryRow(ctx, `UPDATE sales SET dirty = true WHERE id = $1 RETURNING epoch`, id).Scan(&epoch); err != nil {
					t.Fatal(err)
				}
				eventually(t, 10*time.Second, "the leader rebuilds the sale", func() error {
					var e int64
					var dirty bool
					if err := db.QueryRow(ctx, `SELECT epoch, dirty FROM sales WHERE id = $1`, id).Scan(&e, &dirty); err != nil {
						return err
					}
					if e == epoch || dirty {
						return errors.New("not yet")
					}
					return nil
				})
			}
			// Until the rebuilt state is in Redis, a batch is answered 503.
			var out []surge.Outcome
			eventually(t, 10*time.Second, "a purchase on the node behind is decided", func() (err error) {
				out, _, err = reserve(behind, id, surge.Purchase{UserID: "late", Quantity: 1})
				return err
			})
			if len(out) != 1 || out[0].Code != surge.CodeEnded {
				t.Errorf("a purchase on the node %v behind, after the sale was answered ended at %s: %+v; want ended",
					skew, surge.FormatTime(ended.EndsAt), out)
			}
			if rem, err := behind.Remaining(ctx, id); err != nil || rem != stock-1 {
				t.Errorf("remaining %d, %v after the end; want %d", rem, err, stock-1)
			}
		})
	}
}

// TestEndNowComesAfterBatchesAheadOfIt (cluster): an operator's end "now"
// that waits for the sale row's lock behind a batch committing on another
// node ends the sale after it: no order committed ahead of the end lies
// after the sale's ends_at. The end's instant was read before the row's
// lock was taken: an order another node decided and committed meanwhile
// was made after the end (a purchase the sale's own window refuses).
func TestEndNowComesAfterBatchesAheadOfIt(t *testing.T) {
	ns := namespace(t)
	a := openStore(t, ns, cluster.Config{NodeID: "a"})
	t.Cleanup(func() { a.Close() })
	b := openStore(t, ns, cluster.Config{NodeID: "b"})
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	id, name, stock := "ahead", "Ahead", int64(10)
	start := time.Now().Add(-time.Minute)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, a, sl)
	db := servicetest.Conn(t, ns)
	type answer struct {
		out []surge.Outcome
		err error
	}
	done := make(chan answer, 1)
	base := time.Now().UTC().Truncate(time.Millisecond)
	var once sync.Once
	// The end's clock: as it is read, node b decides a batch a millisecond
	// later, which commits, or waits for the sale row's lock if the end
	// holds it already.
	clock := func() time.Time {
		once.Do(func() {
			go func() {
				out, _, err := b.Reserve(ctx, id, []surge.Purchase{{UserID: "b", Quantity: 1}}, surge.At(base.Add(time.Millisecond)))
				done <- answer{out, err}
			}()
			eventually(t, 10*time.Second, "node b's batch commits or waits for the sale's row", func() error {
				select {
				case a := <-done:
					done <- a
					return nil
				default:
				}
				var waiting bool
				if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
					AND wait_event_type = 'Lock' AND query LIKE '%surge_insert_orders%')`).Scan(&waiting); err != nil || waiting {
					return err
				}
				return errors.New("neither yet")
			})
		})
		return base
	}
	ended, err := a.UpdateSale(ctx, id, surge.SalePatch{EndNow: true}, clock)
	if err != nil || !ended.EndsAt.Equal(base) {
		t.Fatalf("end now: %+v, %v; want ended at %s", ended, err, surge.FormatTime(base))
	}
	<-done
	err = a.Orders(ctx, id, func(o surge.Order) error {
		if !o.CreatedAt.Before(ended.EndsAt) {
			t.Errorf("order %s made at %s, in a sale that ended at %s: its window refuses a purchase then",
				o.ID, surge.FormatTime(o.CreatedAt), surge.FormatTime(ended.EndsAt))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRenameAfterEndEndsOnASlowerNode (cluster, a node whose clock is 3 s
// behind the one that renames the sale): a change that starts no epoch (a
// rename) made once the sale has ended marks it ended for every batch in
// Redis, as a change that does installs it: a purchase decided on the node
// behind is refused ended. The rename left Redis's state as it was until
// the leader's next rebuild, and the node behind sold for 3 s more.
func TestRenameAfterEndEndsOnASlowerNode(t *testing.T) {
	const skew = 3 * time.Second
	ns := namespace(t)
	a := openStore(t, ns, cluster.Config{NodeID: "a"})
	t.Cleanup(func() { a.Close() })
	behind := openStore(t, ns, cluster.Config{NodeID: "behind", Now: func() time.Time { return time.Now().Add(-skew) }})
	t.Cleanup(func() { behind.Close() })
	ctx := context.Background()
	id, name, stock := "rename", "Rename", int64(10)
	start, end := time.Now().Add(-time.Minute), time.Now().Add(500*time.Millisecond)
	sl, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, StartsAt: &start, EndsAt: &end}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	createSale(t, a, sl)
	time.Sleep(time.Until(sl.EndsAt.Add(50 * time.Millisecond)))
	renamed := "Renamed"
	if _, err := a.UpdateSale(ctx, id, surge.SalePatch{Name: &renamed}, surge.At(time.Now())); err != nil {
		t.Fatalf("rename after the end: %v", err)
	}
	out, _, err := behind.Reserve(ctx, id, []surge.Purchase{{UserID: "late", Quantity: 1}}, surge.At(time.Now().Add(-skew)))
	if d := time.Since(sl.EndsAt); d > skew-500*time.Millisecond {
		t.Skipf("the machine was too slow: %v past the end", d)
	}
	if err != nil || len(out) != 1 || out[0].Code != surge.CodeEnded {
		t.Errorf("a purchase on the node %v behind, after the sale ended at %s and was renamed: %+v, %v; want ended",
			skew, surge.FormatTime(sl.EndsAt), out, err)
	}
}
