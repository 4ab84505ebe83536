package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/postgres"
	"github.com/surgehq/surge/redis"
	"github.com/surgehq/surge/servicetest"
)

// redisLoss is a way Redis can come back older than PostgreSQL, or lose
// part of a sale's keys. mark runs when the sale is half sold and returns
// the fault, which the test applies once the rest is sold.
type redisLoss struct {
	name string
	args []string // the private redis-server's persistence
	mark func(t *testing.T, rs *redisServer, rc redis.Client, prefix, sale string) (fault func())
}

var redisLosses = []redisLoss{
	{
		// Redis wrote a snapshot (its default save rules do on their
		// own), then was killed and reloaded it on restart.
		name: "SnapshotReloaded",
		args: []string{"--save", "", "--appendonly", "no"},
		mark: func(t *testing.T, rs *redisServer, rc redis.Client, _, _ string) func() {
			if err := rc.Save(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			return func() { rs.stop(); rs.start() }
		},
	},
	{
		// The tail of the append-only file was lost (appendfsync
		// everysec on a crash, a disk that lied): the restart replays
		// what is left.
		name: "AOFTailLost",
		args: []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"},
		mark: func(t *testing.T, rs *redisServer, _ redis.Client, _, _ string) func() {
			files, err := filepath.Glob(filepath.Join(rs.dir, "appendonlydir", "*.incr.aof"))
			if err != nil || len(files) != 1 {
				t.Fatalf("the AOF: %v, %v", files, err)
			}
			fi, err := os.Stat(files[0])
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				rs.stop()
				if err := os.Truncate(files[0], fi.Size()); err != nil {
					t.Fatal(err)
				}
				rs.start()
			}
		},
	},
	{
		// An asynchronous replica that had not received the newest writes
		// was promoted: every key of the sale as it was earlier.
		name: "ReplicaBehind",
		args: []string{"--save", "", "--appendonly", "no"},
		mark: func(t *testing.T, _ *redisServer, rc redis.Client, prefix, _ string) func() {
			return replicaOf(t, rc, prefix)
		},
	},
	{
		// The per-user and idempotency hashes were evicted (a maxmemory
		// policy other than noeviction), the rest of the state kept.
		name: "HashesEvicted",
		args: []string{"--save", "", "--appendonly", "no"},
		mark: func(t *testing.T, _ *redisServer, rc redis.Client, prefix, sale string) func() {
			return func() {
				if err := rc.Del(context.Background(), prefix+":{"+sale+"}:u", prefix+":{"+sale+"}:k").Err(); err != nil {
					t.Fatal(err)
				}
			}
		},
	},
}

// TestRedisBehindPostgres: for each way Redis loses or rolls back state
// (issue 9, item 1), sell a third of a sale (stock 30, 2 per buyer), mark
// the point Redis will return to, sell another third, apply the fault;
// then no unit is oversold, no buyer goes over the limit, and replays of
// confirmed keys answer the same order. Two ways to find out:
//   - Leader: no purchase at all; the leader alone sees that Redis
//     disagrees with PostgreSQL and rebuilds the sale.
//   - Traffic: purchases go at once through a node that saw PostgreSQL's
//     count before the second third, so its own check passes: PostgreSQL
//     refuses what a stale Redis decides, and the sale is rebuilt (unless
//     the leader's round came first: either way the answers are right).
func TestRedisBehindPostgres(t *testing.T) {
	for _, loss := range redisLosses {
		for _, mode := range []string{"Leader", "Traffic"} {
			t.Run(loss.name+"/"+mode, func(t *testing.T) { redisBehind(t, loss, mode == "Leader") })
		}
	}
}

func redisBehind(t *testing.T, loss redisLoss, leader bool) {
	rs := startRedisWith(t, loss.args...)
	ns := namespace(t)
	ctx := context.Background()
	rc, err := redis.Dial(ctx, rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	reg := prometheus.NewRegistry()
	cfg := cluster.Config{Prefix: ns, Schema: ns, NodeID: "a", Interval: 200 * time.Millisecond, Metrics: reg}
	a := openStoreAt(t, rs.url(), postgresURL(), cfg)
	cfg.Metrics = nil // b's are not looked at
	defer a.Close()
	sl := mustSale(t, a, "behind", 30, 2)

	confirmed := map[string]surge.Order{}
	first := map[string]surge.Order{} // user -> order of key k1
	buy := func(s *cluster.Store, users ...string) {
		t.Helper()
		for _, u := range users {
			out := settled(t, s, sl.ID, surge.Purchase{UserID: u, IdempotencyKey: "k1", Quantity: 2})
			if out.Code != surge.CodeReserved || out.Replay {
				t.Fatalf("%s: %+v, want a new reservation", u, out)
			}
			confirmed[out.Order.ID], first[u] = out.Order, out.Order
		}
	}
	buy(a, "p0", "p1", "p2", "p3", "p4")
	// b learns PostgreSQL's count now, before the second third.
	cfg.NodeID = "b"
	b := openStoreAt(t, rs.url(), postgresURL(), cfg)
	defer b.Close()
	fault := loss.mark(t, rs, rc, ns, sl.ID)
	buy(a, "q0", "q1", "q2", "q3", "q4")
	fault()

	n := b
	if leader {
		db, err := postgres.Open(ctx, postgresURL(), postgres.Options{Schema: ns})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		eventually(t, 10*time.Second, "the leader rebuilds the sale with no purchase", func() error {
			row, err := db.Sale(ctx, sl.ID)
			if err != nil {
				return err
			}
			if row.Epoch < 2 {
				return fmt.Errorf("epoch %d", row.Epoch)
			}
			// Counted once the new state is in Redis, just after.
			if c := gather(t, reg)["surge_cluster_rebuilds_total"].GetMetric()[0].GetCounter().GetValue(); c < 1 {
				return fmt.Errorf("surge_cluster_rebuilds_total = %v", c)
			}
			return nil
		})
		n = a
	}

	// Buyers at the limit stay there.
	for _, u := range []string{"q0", "q1", "q2", "q3", "q4"} {
		out := settled(t, n, sl.ID, surge.Purchase{UserID: u, IdempotencyKey: "k2", Quantity: 1})
		if out.Code != surge.CodeLimitReached {
			t.Errorf("%s, at the limit, buys again: %+v, want limit_reached", u, out)
		}
	}
	// The 10 units left sell, and not one more.
	reserved := 0
	for i := range 10 {
		out := settled(t, n, sl.ID, surge.Purchase{UserID: fmt.Sprintf("n%d", i), IdempotencyKey: "k1", Quantity: 2})
		if out.Code == surge.CodeReserved {
			reserved++
			confirmed[out.Order.ID] = out.Order
		} else if out.Code != surge.CodeSoldOut {
			t.Errorf("new buyer n%d: %+v, want reserved or sold_out", i, out)
		}
	}
	if reserved != 5 {
		t.Errorf("%d new buyers reserved 2 units each of the 10 left, want 5", reserved)
	}
	// Replays of confirmed keys answer their first order.
	for _, u := range []string{"q0", "q1", "q2", "q3", "q4", "p0"} {
		out := settled(t, n, sl.ID, surge.Purchase{UserID: u, IdempotencyKey: "k1", Quantity: 2})
		if out.Code != surge.CodeReserved || !out.Replay || out.Order.ID != first[u].ID {
			t.Errorf("replay of %s's key: %+v, want order %s replayed", u, out, first[u].ID)
		}
	}
	truth(t, n, sl, confirmed)
}

// settled makes a purchase, retrying while the store answers unavailable
// (a rebuild under way), as a buyer with an Idempotency-Key would.
func settled(t *testing.T, s *cluster.Store, sale string, p surge.Purchase) surge.Outcome {
	t.Helper()
	var out surge.Outcome
	eventually(t, 15*time.Second, fmt.Sprintf("purchase %+v", p), func() error {
		outs, _, err := reserve(s, sale, p)
		if err == nil {
			err = outs[0].Err
		}
		if err != nil {
			if surge.ErrorCode(err) != surge.CodeUnavailable {
				t.Fatalf("purchase %+v: %v", p, err)
			}
			return err
		}
		out = outs[0]
		return nil
	})
	return out
}

// TestRedisRollbackMidSpike: two nodes sell to a crowd of concurrent
// buyers while Redis rolls back to an earlier point (a snapshot reloaded,
// the AOF's tail lost) in the middle of the spike. PostgreSQL ends with no
// oversell, no buyer over the limit, every confirmed order, and every
// confirmed key replays its order.
func TestRedisRollbackMidSpike(t *testing.T) {
	for _, loss := range redisLosses[:2] {
		t.Run(loss.name, func(t *testing.T) { rollbackMidSpike(t, loss) })
	}
}

func rollbackMidSpike(t *testing.T, loss redisLoss) {
	// Each buyer comes twice (intents i and i+300) for the same quantity:
	// the stock runs out about when the fault lands, and the rollback
	// forgets buyers who then come back.
	const (
		stock   = 450
		limit   = 2
		users   = 300
		buyers  = 12
		intents = 600
	)
	rs := startRedisWith(t, loss.args...)
	ns := namespace(t)
	rc, err := redis.Dial(context.Background(), rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var nodes []*cluster.Store
	for i := range 2 {
		s := openStoreAt(t, rs.url(), postgresURL(), cluster.Config{Prefix: ns, Schema: ns, NodeID: fmt.Sprintf("n%d", i), Interval: 100 * time.Millisecond})
		defer s.Close()
		nodes = append(nodes, s)
	}
	sl := mustSale(t, nodes[0], "spike", stock, limit)

	type intent struct {
		p     surge.Purchase
		order surge.Order
	}
	var (
		mu        sync.Mutex
		confirmed = map[string]surge.Order{}
		done      []intent
	)
	work := make(chan int, intents)
	for i := range intents {
		work <- i
	}
	close(work)
	var finished atomic.Int64
	var wg sync.WaitGroup
	for range buyers {
		wg.Go(func() {
			for i := range work {
				p := surge.Purchase{UserID: fmt.Sprintf("u%d", i*7%users), IdempotencyKey: fmt.Sprintf("k%d", i), Quantity: 1 + int64(i%limit)}
				for attempt := 0; attempt < 200; attempt++ {
					outs, _, err := reserve(nodes[i%2], sl.ID, p)
					if err == nil {
						err = outs[0].Err
					}
					if surge.ErrorCode(err) == surge.CodeUnavailable {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					if err != nil {
						t.Errorf("purchase %+v: %v", p, err)
					} else if outs[0].Code == surge.CodeReserved {
						mu.Lock()
						confirmed[outs[0].Order.ID] = outs[0].Order
						done = append(done, intent{p, outs[0].Order})
						mu.Unlock()
					}
					break
				}
				finished.Add(1)
			}
		})
	}
	waitFor := func(n int64) {
		for finished.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(intents / 4)
	fault := loss.mark(t, rs, rc, ns, sl.ID)
	waitFor(intents / 2)
	fault()
	wg.Wait()
	t.Logf("%d orders confirmed", len(confirmed))
	truth(t, nodes[0], sl, confirmed)
	for _, in := range done {
		out := settled(t, nodes[1], sl.ID, in.p)
		if out.Code != surge.CodeReserved || !out.Replay || out.Order.ID != in.order.ID {
			t.Errorf("replay of %+v: %+v, want order %s", in.p, out, in.order.ID)
		}
	}
}

// TestReplayAfterRedisRollbackIsTheDurableOrder: Redis comes back older than
// PostgreSQL (an asynchronous replica promoted: every key of the sale as
// it was before alice's purchase), and alice's client retries her key k1
// (its 201 was lost). docs/cluster.md promises "503s, never a wrong 201"
// and "replays of confirmed keys answer their order once rebuilt".
//
// The first retry is decided in Redis as a new purchase (Redis forgot k1),
// which puts Redis's count of units back at PostgreSQL's, so the node's
// floor check passes; PostgreSQL refuses the second order for the key and
// the sale is marked dirty (503). Until the leader's next round rebuilds
// it (up to Config.Interval, 1 s by default; here the leader's rounds are
// an hour apart to hold that window open), the next retry replays the
// refused order from Redis's record, and, since this node knows k1 is
// durable (its own 201), it answers 201 with that order without asking
// PostgreSQL: an order id that does not exist, not alice's first answer.
// The node now confirms such a replay in PostgreSQL (503 until the
// rebuild), as it does any replay it does not know to be durable.
func TestReplayAfterRedisRollbackIsTheDurableOrder(t *testing.T) {
	ctx := context.Background()
	rc, ns, nodes := rollbackNodes(t, "a")
	a := nodes[0]
	sl := mustSale(t, a, "rollback-replay", 10, 2)

	// The replica that will be promoted has the sale as it is now.
	promote := replicaOf(t, rc, ns)

	p := surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 1}
	outs, _, err := reserve(a, sl.ID, p)
	if err != nil || outs[0].Err != nil || outs[0].Code != surge.CodeReserved || outs[0].Replay {
		t.Fatalf("alice's purchase: %+v, %v", outs, err)
	}
	first := outs[0].Order

	// The replica, behind, is promoted.
	promote()

	for try := range 3 {
		outs, _, err := reserve(a, sl.ID, p)
		if err == nil {
			err = outs[0].Err
		}
		if err != nil {
			if surge.ErrorCode(err) != surge.CodeUnavailable {
				t.Fatalf("retry %d of k1: %v", try, err)
			}
			t.Logf("retry %d of k1: %v (fine: retry later)", try, err)
			continue
		}
		got := outs[0]
		if got.Code != surge.CodeReserved || !got.Replay || got.Order.ID != first.ID {
			t.Errorf("retry %d of k1: %s replay=%v order %s, want the replay of alice's order %s", try, got.Code, got.Replay,
				got.Order.ID, first.ID)
		}
		if _, err := a.Order(ctx, got.Order.ID); err != nil {
			t.Errorf("retry %d of k1 was answered reserved with order %s, which PostgreSQL does not hold: %v", try, got.Order.ID, err)
		}
	}
}

// rollbackNodes starts a private Redis and opens on it a leader whose
// rounds are an hour apart (so only a node's own checks run within a
// test), then the nodes named; it returns a client of that Redis, the
// namespace (prefix and schema) and the named nodes, all closed at the
// test's end.
func rollbackNodes(t *testing.T, names ...string) (rc redis.Client, ns string, nodes []*cluster.Store) {
	t.Helper()
	rs := startRedis(t)
	ns = namespace(t)
	rc, err := redis.Dial(context.Background(), rs.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	cfg := cluster.Config{Prefix: ns, Schema: ns, NodeID: "lead", Interval: time.Hour, LeaseTTL: 2 * time.Hour}
	lead := openStoreAt(t, rs.url(), postgresURL(), cfg)
	t.Cleanup(func() { lead.Close() })
	eventuallyLeads(t, lead, 10*time.Second, "the first node leads")
	for _, name := range names {
		cfg.NodeID = name
		n := openStoreAt(t, rs.url(), postgresURL(), cfg)
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	return rc, ns, nodes
}

// replicaOf copies every key under prefix as it is now, as an asynchronous
// replica would hold them, and returns its promotion: the keys under
// prefix become the copy's again, whatever was written since.
func replicaOf(t *testing.T, rc redis.Client, prefix string) (promote func()) {
	t.Helper()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	dumps := map[string]string{}
	for _, k := range keys {
		if dumps[k], err = rc.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		now, err := rc.Keys(ctx, prefix+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range now {
			rc.Del(ctx, k)
		}
		for k, d := range dumps {
			if err := rc.Restore(ctx, k, 0, d).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestPostgresRestoredOlderThanRedis: the reverse of a Redis rollback. An
// operator restores PostgreSQL from a backup taken before some orders were
// committed, while Redis keeps the newer state: Redis now holds units and
// idempotency records for orders PostgreSQL lost. The sale must not stay
// wrong for good: within a few leader rounds its live stock must be
// PostgreSQL's again, and a buyer retrying a lost order's key must get an
// answer PostgreSQL backs (a 201 for an order it holds), not 503 forever.
func TestPostgresRestoredOlderThanRedis(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	cfg := cluster.Config{Prefix: ns, Schema: ns, NodeID: "lead", Interval: 50 * time.Millisecond,
		ConfirmAfter: 200 * time.Millisecond, NoExpiry: true}
	lead := openStoreAt(t, redisURL(), postgresURL(), cfg)
	defer lead.Close()
	eventuallyLeads(t, lead, 10*time.Second, "the first node leads")
	sl := mustSale(t, lead, "pg-restored", 10, 2)

	// The backup: PostgreSQL as it is now, before any order.
	db := servicetest.Conn(t, ns)
	for _, q := range []string{`CREATE TABLE bk_sales AS SELECT * FROM sales`, `CREATE TABLE bk_orders AS SELECT * FROM orders`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []surge.Purchase{{UserID: "alice", IdempotencyKey: "k1", Quantity: 2}, {UserID: "bob", IdempotencyKey: "k2", Quantity: 2}} {
		// With its key, a purchase answered 503 is tried again: the test's
		// 200 ms confirm-after lets a loaded machine's slow commit look
		// lost to the leader, which rebuilds (CI, -race), before the
		// backup's story begins.
		eventually(t, 10*time.Second, p.UserID+"'s purchase", func() error {
			outs, _, err := reserve(lead, sl.ID, p)
			if err == nil && len(outs) == 1 {
				err = outs[0].Err
			}
			if surge.ErrorCode(err) == surge.CodeUnavailable {
				return err
			}
			if err != nil || outs[0].Code != surge.CodeReserved {
				t.Fatalf("%s's purchase: %+v, %v", p.UserID, outs, err)
			}
			return nil
		})
	}
	// The leader confirms both reservations against PostgreSQL: Redis's
	// unconfirmed set keeps only its sentinel.
	rc, err := redis.Dial(ctx, redisURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	eventually(t, 10*time.Second, "the leader confirms the reservations", func() error {
		if n, err := rc.ZCard(ctx, ns+":{"+sl.ID+"}:p").Result(); err != nil || n != 1 {
			return fmt.Errorf("unconfirmed set of %d members, %v", n, err)
		}
		return nil
	})

	// The restore: PostgreSQL goes back to the backup; Redis is untouched.
	for _, q := range []string{`DELETE FROM orders`, `INSERT INTO orders SELECT * FROM bk_orders`,
		`DELETE FROM sales`, `INSERT INTO sales SELECT * FROM bk_sales`} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// A node started after the restore (it knows no key from memory).
	cfg.NodeID = "b"
	b := openStoreAt(t, redisURL(), postgresURL(), cfg)
	defer b.Close()
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for {
		rem, err := b.Remaining(ctx, sl.ID)
		outs, _, rerr := reserve(b, sl.ID, surge.Purchase{UserID: "alice", IdempotencyKey: "k1", Quantity: 2})
		if rerr == nil {
			rerr = outs[0].Err
		}
		ok := err == nil && rerr == nil && outs[0].Code == surge.CodeReserved
		if ok {
			if _, err := b.Order(ctx, outs[0].Order.ID); err != nil {
				t.Fatalf("alice's retry of k1 was answered 201 with order %s, which PostgreSQL does not hold: %v", outs[0].Order.ID, err)
			}
			rem, _ = b.Remaining(ctx, sl.ID)
			if rem == 8 {
				break
			}
		}
		last = fmt.Sprintf("live stock %d (PostgreSQL holds 2 of 10 units sold after alice's retry, so 8); alice's retry of k1: %+v, %v", rem, outs, rerr)
		if time.Now().After(deadline) {
			t.Fatalf("5 s after PostgreSQL was restored from an older backup, the sale still follows Redis's newer state, not the database: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The node that served through the restore sells again too, and
	// replays alice's key with the order PostgreSQL holds, not the lost one.
	eventually(t, 5*time.Second, "the node that ran through the restore serves the sale from PostgreSQL's truth", func() error {
		for _, p := range []surge.Purchase{{UserID: "carol", IdempotencyKey: "k3", Quantity: 1}, {UserID: "alice", IdempotencyKey: "k1", Quantity: 2}} {
			outs, _, err := reserve(lead, sl.ID, p)
			if err == nil {
				err = outs[0].Err
			}
			if err != nil {
				return fmt.Errorf("%s's purchase with key %s: %v", p.UserID, p.IdempotencyKey, err)
			}
			if _, err := lead.Order(ctx, outs[0].Order.ID); outs[0].Code != surge.CodeReserved || err != nil {
				return fmt.Errorf("%s's purchase with key %s: %s order %s, which PostgreSQL does not hold (%v)", p.UserID, p.IdempotencyKey, outs[0].Code, outs[0].Order.ID, err)
			}
		}
		return nil
	})
}

// TestOwnBatchDoesNotHideRedisBehind: a node that knows PostgreSQL's count
// of units ever sold must not trust a Redis that came back older only
// because the batch it decides there reserves enough to make up the
// difference. Alice buys her limit, Redis's replica takes its copy, she
// cancels and buys her limit again with key K on node b; the replica,
// behind, is promoted. Node a, which knows PostgreSQL's count, then decides
// one batch: a new buyer's purchase of as many units as Redis lost, and
// alice's retry of K. The older state still counts her first order, so it
// refuses K at the limit: a 409 for a key whose 201 is durable, unless the
// node sees that Redis was behind before this batch reserved anything.
func TestOwnBatchDoesNotHideRedisBehind(t *testing.T) {
	// The leader's rounds are an hour apart: only a's own check can see
	// Redis behind within the test.
	ctx := context.Background()
	rc, ns, nodes := rollbackNodes(t, "a", "b")
	a, b := nodes[0], nodes[1]
	sl := mustSale(t, a, "behind-own-batch", 10, 2)

	buy := func(s *cluster.Store, p surge.Purchase) surge.Order {
		t.Helper()
		outs, _, err := reserve(s, sl.ID, p)
		if err == nil {
			err = outs[0].Err
		}
		if err != nil || outs[0].Code != surge.CodeReserved || outs[0].Replay {
			t.Fatalf("purchase %+v: %+v, %v", p, outs, err)
		}
		return outs[0].Order
	}
	first := buy(a, surge.Purchase{UserID: "alice", IdempotencyKey: "k0", Quantity: 2})
	promote := replicaOf(t, rc, ns) // the replica has alice's first order
	if _, err := b.Cancel(ctx, first.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	k := surge.Purchase{UserID: "alice", IdempotencyKey: "K", Quantity: 2}
	second := buy(b, k)
	// a learns PostgreSQL's count, as its poll of the sales does.
	if _, err := a.Sales(ctx); err != nil {
		t.Fatal(err)
	}
	promote()

	outs, _, err := reserve(a, sl.ID, surge.Purchase{UserID: "bob", IdempotencyKey: "kb", Quantity: 2}, k)
	if err != nil {
		if surge.ErrorCode(err) != surge.CodeUnavailable {
			t.Fatalf("the batch after the rollback: %v, want unavailable or alice's order replayed", err)
		}
		t.Logf("the batch after the rollback: %v (fine: the sale is rebuilt)", err)
		return
	}
	got := outs[1]
	if got.Err != nil && surge.ErrorCode(got.Err) == surge.CodeUnavailable {
		return
	}
	if got.Code != surge.CodeReserved || got.Order.ID != second.ID {
		t.Fatalf("alice's retry of key K, whose order %s PostgreSQL holds: %s (err %v), want order %s replayed or unavailable",
			second.ID, got.Code, got.Err, second.ID)
	}
}
