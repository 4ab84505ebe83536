package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestMultiNodeSpike: three nodes (each a store and an engine, as three
// `surge serve` processes would have) share one Redis and PostgreSQL, and
// one crowd buys through all of them at once, retrying keys on other
// nodes and cancelling some orders. Every guarantee is then checked against
// PostgreSQL.
func TestMultiNodeSpike(t *testing.T) {
	t.Run("OneSlot", func(t *testing.T) { multiNodeSpike(t, spikeOptions{buckets: 1}) })
	// The sale's stock split over four slots: dry buckets borrow.
	t.Run("Buckets", func(t *testing.T) { multiNodeSpike(t, spikeOptions{buckets: 4}) })
}

// spikeOptions vary multiNodeSpike.
type spikeOptions struct {
	buckets  int
	redisURL string // "": the test Redis
	// midway, if set, runs once half of the crowd's intents are sent
	// (a fault to inject), with the sale's id.
	midway func(sale string)
	// answered, if set, hears every failed attempt of a purchase (err)
	// and every decided answer, 201 or 409 (nil, with the time since the
	// purchase's first attempt).
	answered func(err error, took time.Duration)
	// retryFor: how long a buyer retries a 503 with its key (at least 50
	// tries, 20 ms apart); without a fault (midway), 20 s when 0.
	retryFor time.Duration
	// keyCopy, if set, is the nodes' Config.KeyCopy: 1 keeps keyed
	// purchases of the sold-out sale on Redis (a fault there must be felt).
	keyCopy int
}

func multiNodeSpike(t *testing.T, opt spikeOptions) {
	const (
		nodes   = 3
		stock   = 400
		limit   = 2
		users   = 500
		buyers  = 48
		intents = 1500
	)
	ns := namespace(t)
	retryFor := opt.retryFor
	if retryFor == 0 && opt.midway == nil {
		// No fault: a 503 is a call that outlasted its timeout on a
		// loaded machine (PostgreSQL, 2 s), or the breaker it opened for
		// a second, and the buyer retries it as Retry-After asks.
		retryFor = 20 * time.Second
	}
	var engines []*engine.Engine
	var stores []*cluster.Store
	for i := range nodes {
		cfg := cluster.Config{NodeID: fmt.Sprintf("n%d", i), Interval: 200 * time.Millisecond, Buckets: opt.buckets, KeyCopy: opt.keyCopy}
		var s *cluster.Store
		if opt.redisURL == "" {
			s = openStore(t, ns, cfg)
		} else {
			cfg.Prefix, cfg.Schema = ns, ns
			s = openStoreAt(t, opt.redisURL, postgresURL(), cfg)
		}
		ecfg := engine.Config{MaxBatch: 64, SyncInterval: 100 * time.Millisecond, InFlight: 4}
		if opt.midway != nil { // the fault's failed batches are expected
			ecfg.Logger = slog.New(slog.DiscardHandler)
		}
		e, err := engine.Open(context.Background(), s, ecfg)
		if err != nil {
			t.Fatal(err)
		}
		engines, stores = append(engines, e), append(stores, s)
	}
	defer func() {
		for i := range engines {
			engines[i].Close()
			stores[i].Close()
		}
	}()
	name, id := "spike", "multi"
	st, lim, hold := int64(stock), int64(limit), int64(3600)
	if _, err := engines[0].CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &st, PerUserLimit: &lim, HoldSeconds: &hold}); err != nil {
		t.Fatal(err)
	}
	// Every node learns of the sale from the announcement.
	eventually(t, 20*time.Second, "every node serves the sale", func() error {
		for i, e := range engines {
			if _, err := e.Sale(id); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})

	type answer struct {
		order surge.Order
		node  int
	}
	var (
		mu        sync.Mutex
		confirmed = map[string]surge.Order{}
		byKey     = map[string]string{} // user/key -> order id answered
	)
	work := make(chan int, intents)
	for i := range intents {
		work <- i
	}
	close(work)
	var midway sync.Once
	var refused atomic.Int64
	var wg sync.WaitGroup
	for b := range buyers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(b), 7))
			for i := range work {
				if opt.midway != nil && i >= intents/2 {
					midway.Do(func() { opt.midway(id) })
				}
				user := fmt.Sprintf("u%03d", rng.IntN(users))
				// The quantity follows the key: a key reused with another
				// quantity is a different request (422), not a replay.
				p := surge.Purchase{UserID: user, IdempotencyKey: fmt.Sprintf("k%d", i%700), Quantity: 1 + int64(i%700)%limit}
				// Each intent is sent to one node, and a third of them
				// again to another: the retry must replay, never buy twice.
				tries := 1 + rng.IntN(3)/2
				for try := range tries {
					node := (i + try) % nodes
					var out surge.Outcome
					var err error
					// A buyer retries a 503 with the same key, as the
					// Retry-After asks: for about a second through a fault
					// (a replay still committing), or retryFor.
					first := time.Now()
					for attempt := 0; ; attempt++ {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						out, err = engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: p})
						cancel()
						if opt.answered != nil && err != nil {
							opt.answered(err, 0)
						}
						if surge.ErrorCode(err) != surge.CodeUnavailable || attempt >= 50 && time.Since(first) > retryFor {
							break
						}
						time.Sleep(20 * time.Millisecond)
					}
					if opt.answered != nil && err == nil {
						opt.answered(nil, time.Since(first))
					}
					if err != nil && opt.midway != nil && opt.retryFor == 0 && surge.ErrorCode(err) == surge.CodeUnavailable {
						refused.Add(1) // the fault's window: a 503, retried by the buyer later
						continue
					}
					if err != nil && opt.retryFor > 0 {
						t.Errorf("purchase on node %d: still %v after retrying for %v", node, err, time.Since(first).Round(time.Millisecond))
						continue
					}
					if err != nil {
						t.Errorf("purchase on node %d: %v", node, err)
						continue
					}
					if out.Code != surge.CodeReserved {
						continue
					}
					k := p.UserID + "/" + p.IdempotencyKey
					mu.Lock()
					if prev, ok := byKey[k]; ok && prev != out.Order.ID {
						t.Errorf("key %s answered with orders %s and %s", k, prev, out.Order.ID)
					}
					byKey[k] = out.Order.ID
					confirmed[out.Order.ID] = out.Order
					mu.Unlock()
					if !out.Replay && rng.IntN(10) == 0 {
						// Cancel on yet another node: the units come back.
						// A 503 (PostgreSQL slow on a loaded machine) is
						// retried, as a buyer would, for 20 s at most.
						var err error
						for start := time.Now(); ; {
							if _, err = engines[(node+1)%nodes].Cancel(context.Background(), out.Order.ID); surge.ErrorCode(err) != surge.CodeUnavailable || time.Since(start) > 20*time.Second {
								break
							}
							time.Sleep(50 * time.Millisecond)
						}
						if err != nil {
							t.Errorf("cancel: %v", err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d orders confirmed across %d nodes; %d purchases refused unavailable during the fault", len(confirmed), nodes, refused.Load())
	if len(confirmed) < stock/limit {
		t.Errorf("only %d orders for a stock of %d: the crowd was too small to sell out", len(confirmed), stock)
	}
	sl, _ := engines[0].Sale(id)
	truth(t, stores[1], sl.Sale, confirmed)
	// Every node converges on the same remaining figure.
	eventually(t, 20*time.Second, "nodes agree on the remaining stock", func() error {
		want, err := stores[0].Remaining(context.Background(), id)
		if err != nil {
			return err
		}
		for i, e := range engines {
			if s, _ := e.Sale(id); s.Remaining != want {
				return fmt.Errorf("node %d shows %d remaining, store has %d", i, s.Remaining, want)
			}
		}
		return nil
	})
}

// TestSameNodeIDOneLeader: two nodes started with the same --node-id (one
// config file copied to two hosts, SURGE_NODE_ID in a shared environment
// file: an operator's slip) must still have one leader and one outbox
// publisher. docs/cluster.md: "One node holds the jobs lease in
// PostgreSQL … Each new term has a larger token, and the leader's writes
// … carry it"; outbox.Config.Fresh: "two publishers would interleave a
// sale's events". The lease names its holder by the node id alone, so a
// second node of that name renews the first one's term, token and all:
// both lead, both publish, and the fence tells them apart no more.
func TestSameNodeIDOneLeader(t *testing.T) {
	ns := namespace(t)
	// leaseTTL, not 1 s: a renewal slower than the lease on a loaded
	// machine would hand it to b while a still believes it leads.
	cfg := cluster.Config{NodeID: "shop-1", Interval: 100 * time.Millisecond, LeaseTTL: leaseTTL, Events: true}
	a := openLeader(t, ns, cfg)
	b := openStore(t, ns, cfg)
	t.Cleanup(func() { b.Close() })
	time.Sleep(500 * time.Millisecond) // five rounds of b's leader loop
	if a.Leader() && b.Leader() {
		t.Errorf("two nodes of one --node-id both lead the once-only jobs")
	}

	mustSale(t, a, "s", 10, 1)
	if out, _, err := reserve(a, "s", surge.Purchase{UserID: "u", Quantity: 1}); err != nil || out[0].Code != surge.CodeReserved {
		t.Fatalf("reserve: %v %v", out, err)
	}
	ctx := t.Context()
	evA, errA := a.PendingEvents(ctx, 0, 10)
	evB, errB := b.PendingEvents(ctx, 0, 10)
	if errA != nil || errB != nil {
		t.Fatalf("outbox reads: %v, %v", errA, errB)
	}
	if len(evA) > 0 && len(evB) > 0 {
		t.Errorf("two nodes of one --node-id both read the outbox to publish it (%d and %d events)", len(evA), len(evB))
	}
}

// TestRedisPrefixMismatchFailsReadiness: a node given another
// --redis-prefix (or --redis-url) than the leader for one PostgreSQL
// answers every purchase 503 for good: the leader rebuilds the sale's live
// state in another Redis, so this node's has none (the leader created the
// sale), or one of an epoch PostgreSQL replaced, whose batches it fences
// (this node created it). It must say so: its readiness fails, naming the
// mismatch.
func TestRedisPrefixMismatchFailsReadiness(t *testing.T) {
	for _, tc := range []struct {
		name      string
		createdBy string // "leader" or "odd"
	}{
		{"sale created on the leader", "leader"},
		{"sale created on the odd node", "odd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			a, cfg := fastLeader(t, ns)
			cfg.NodeID, cfg.Prefix, cfg.Schema = "b", ns+"-other", ns
			b := openStoreAt(t, redisURL(), postgresURL(), cfg)
			t.Cleanup(func() { b.Close() })
			if tc.createdBy == "leader" {
				mustSale(t, a, "s", 10, 1)
			} else {
				mustSale(t, b, "s", 10, 1)
			}
			ctx := t.Context()
			if err := b.Ready(ctx); err != nil {
				t.Fatalf("node b not ready before any purchase: %v", err)
			}
			user := 0
			eventually(t, 15*time.Second, "the node whose --redis-prefix differs from the leader's reports it in its readiness", func() error {
				user++
				out, _, err := reserve(b, "s", surge.Purchase{UserID: fmt.Sprint("u", user), Quantity: 1})
				answer := "503"
				if err == nil {
					answer = string(out[0].Code)
				}
				if err = b.Ready(ctx); err == nil {
					return fmt.Errorf("node b answers %s (the leader rebuilds the sale's live state in another Redis; PostgreSQL has sold none of its 10 units) yet reports itself ready, naming no cause", answer)
				}
				if !strings.Contains(err.Error(), "--redis-prefix") {
					return fmt.Errorf("readiness fails without naming the mismatch: %v", err)
				}
				return nil
			})
		})
	}
}

// TestRedisLossTwiceNotAPrefixMismatch: in a normal cluster (one Redis,
// one prefix), Redis losing a sale's live state (a restart without
// persistence, a flush) makes a follower's purchases 503 until the leader
// rebuilds it, within a round. A second such loss long after the first
// (the sale answered normally in between, sold out) is the same brief
// rebuild: the follower must neither log that its Redis is not the
// leader's nor fail its readiness naming a --redis-prefix mismatch.
func TestRedisLossTwiceNotAPrefixMismatch(t *testing.T) {
	ns := namespace(t)
	a, cfg := fastLeader(t, ns)
	logs := &servicetest.Log{}
	cfg.NodeID, cfg.Logger = "b", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))
	b := openStore(t, ns, cfg)
	t.Cleanup(func() { b.Close() })
	reserveEach(t, a, mustSale(t, a, "s", 1, 1), 1) // the first purchase
	rc := dialRedis(t)
	user := 0
	buy := func() error {
		user++
		_, _, err := reserve(b, "s", surge.Purchase{UserID: fmt.Sprint("u", user), Quantity: 1})
		return err
	}
	// loseState drops the sale's live state from Redis until node b
	// finds it missing (answers 503), as after a Redis restart.
	loseState := func() {
		t.Helper()
		eventually(t, 5*time.Second, "node b finds the sale's live state lost", func() error {
			keys, err := rc.Keys(t.Context(), ns+":*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) > 0 {
				rc.Del(t.Context(), keys...)
			}
			if buy() == nil {
				return errors.New("node b still decided a purchase")
			}
			return nil
		})
	}
	rebuilt := func() {
		t.Helper()
		eventually(t, 5*time.Second, "the leader rebuilds the sale's live state", buy)
	}
	loseState()
	rebuilt()
	// The sale answers normally (sold out) for longer than a missing state
	// may last before node b calls it a mismatch.
	for until := time.Now().Add(2*cfg.LeaseTTL + 5*cfg.Interval + time.Second); time.Now().Before(until); {
		if err := buy(); err != nil {
			t.Fatalf("a purchase on the rebuilt sale: %v", err)
		}
		time.Sleep(cfg.Interval)
	}
	loseState()
	err := b.Ready(t.Context())
	if err != nil && strings.Contains(err.Error(), "--redis-prefix") {
		t.Errorf("node b, whose Redis and prefix are the leader's, fails its readiness calling them another's, a moment after Redis lost a sale's state for the second time: %v", err)
	}
	if l := logs.String(); strings.Contains(l, "--redis-prefix") {
		t.Errorf("node b, whose Redis and prefix are the leader's, logged an error calling them another's: %s", l)
	}
	rebuilt()
}

// fastLeader opens node "a" on ns with a short loop interval and lease,
// waits until it leads, and returns it with its config for other nodes.
func fastLeader(t *testing.T, ns string) (*cluster.Store, cluster.Config) {
	t.Helper()
	cfg := cluster.Config{Interval: 100 * time.Millisecond, LeaseTTL: time.Second, NodeID: "a"}
	return openLeader(t, ns, cfg), cfg
}

// openLeader opens a node on ns with cfg, closed when the test ends (Close
// may come earlier), and waits until it leads.
func openLeader(t *testing.T, ns string, cfg cluster.Config) *cluster.Store {
	t.Helper()
	a := openStore(t, ns, cfg)
	t.Cleanup(func() { a.Close() })
	eventuallyLeads(t, a, 5*time.Second, "a node leads")
	return a
}
