package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
)

// keyedNodes opens n nodes (a store and an engine each) on one dataset;
// the first leads before the others open, so the others make no Redis call
// of their own (the leader's jobs) and theirs can be counted. The engines
// poll their sales hourly: only purchases and announcements reach Redis,
// so the copies are trusted for as long after a read of Redis
// (KeyCopyFresh; TestKeyedSoldOutCutOff has the default).
func keyedNodes(t *testing.T, n int) ([]*cluster.Store, []*engine.Engine, []*prometheus.Registry) {
	t.Helper()
	ns := namespace(t)
	var (
		stores  []*cluster.Store
		engines []*engine.Engine
		regs    []*prometheus.Registry
	)
	for i := range n {
		reg := prometheus.NewRegistry()
		s := openStore(t, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i), Metrics: reg, KeyCopyFresh: time.Hour})
		if i == 0 {
			eventuallyLeads(t, s, 10*time.Second, "the first node leads")
		}
		e, err := engine.Open(context.Background(), s, engine.Config{SyncInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stores, engines, regs = append(stores, s), append(engines, e), append(regs, reg)
	}
	t.Cleanup(func() {
		for i := range engines {
			engines[i].Close()
			stores[i].Close()
		}
	})
	return stores, engines, regs
}

// keyedSale creates a sale on the first engine and waits for every node
// to serve it.
func keyedSale(t *testing.T, engines []*engine.Engine, id string, stock, limit int64) {
	t.Helper()
	name, hold := "keyed "+id, int64(3600)
	if _, err := engines[0].CreateSale(context.Background(), surge.SaleInput{ID: &id, Name: &name, Stock: &stock,
		PerUserLimit: &limit, HoldSeconds: &hold}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every node serves the sale", func() error {
		for i, e := range engines {
			if _, err := e.Sale(id); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
}

func buy(e *engine.Engine, sale, user, key string, qty int64) (surge.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.Purchase(ctx, engine.PurchaseRequest{SaleID: sale, Purchase: surge.Purchase{UserID: user, IdempotencyKey: key, Quantity: qty}})
}

// redisCalls is how many Redis calls a node made (its
// surge_dependency_duration_seconds observations).
func redisCalls(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "surge_dependency_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dependency" && l.GetValue() == "redis" {
					n += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return n
}

// proves waits until the node's copy of the sale's keys answers a key
// never used as such (surge.KeyAbsent).
func proves(t *testing.T, s *cluster.Store, e *engine.Engine, sale string) {
	t.Helper()
	i := 0
	eventually(t, 15*time.Second, "the node's copy of the keys proves", func() error {
		if _, st := s.LookupKey(sale, "nobody", "never-used"); st != surge.KeyAbsent {
			// A keyed sold-out answer from Redis starts the catch-up.
			i++
			if out, err := buy(e, sale, "prober", fmt.Sprintf("probe-%d", i), 1); err != nil || out.Code != surge.CodeSoldOut {
				return fmt.Errorf("probe purchase: %v %v", out.Code, err)
			}
			return fmt.Errorf("key state %d", st)
		}
		return nil
	})
}

func sameOrder(a, b surge.Order) bool {
	return a.ID == b.ID && a.SaleID == b.SaleID && a.UserID == b.UserID && a.Quantity == b.Quantity &&
		a.Status == b.Status && a.IdempotencyKey == b.IdempotencyKey &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// TestKeyedSoldOutWithoutRedis: a sale sells out to keyed purchases on
// node A; on node B, once its copy of the keys caught up, the retries of
// A's 201s replay their orders, a key reused with another quantity is
// refused, and keys never used are sold out, all without a Redis call.
func TestKeyedSoldOutWithoutRedis(t *testing.T) {
	stores, engines, regs := keyedNodes(t, 2)
	a, b := engines[0], engines[1]
	const sale, stock = "keyed", 5
	keyedSale(t, engines, sale, stock, 2)
	first := make(map[string]surge.Order)
	for i := range stock {
		user := fmt.Sprintf("u%d", i)
		out, err := buy(a, sale, user, "k-"+user, 1)
		if err != nil || out.Code != surge.CodeReserved {
			t.Fatalf("purchase %d on A: %v %v", i, out.Code, err)
		}
		first[user] = out.Order
	}
	proves(t, stores[1], b, sale)

	// B makes no Redis call of its own unless it took the lead (A's
	// renewal late on a loaded machine): then the round is measured again.
	for round := 0; ; round++ {
		before := redisCalls(t, regs[1])
		for user, o := range first {
			out, err := buy(b, sale, user, "k-"+user, 1)
			if err != nil || out.Code != surge.CodeReserved || !out.Replay || !sameOrder(out.Order, o) {
				t.Errorf("retry of %s's 201 on B: %v %v replay=%v %+v, want the order %+v", user, out.Code, err, out.Replay, out.Order, o)
			}
			if out, err := buy(b, sale, user, "k-"+user, 2); surge.ErrorCode(err) != surge.CodeIdempotencyMismatch && out.Code != surge.CodeIdempotencyMismatch {
				t.Errorf("%s's key with another quantity on B: %v %v, want idempotency_mismatch", user, out.Code, err)
			}
		}
		for i := range 200 {
			out, err := buy(b, sale, fmt.Sprintf("v%d", i), fmt.Sprintf("fresh-%d", i), 1)
			if err != nil || out.Code != surge.CodeSoldOut {
				t.Fatalf("new key on B: %v %v, want sold_out", out.Code, err)
			}
		}
		after := redisCalls(t, regs[1])
		if stores[1].Leader() && round < 3 {
			t.Logf("B leads (round %d): measuring again", round)
			continue
		}
		if after != before {
			t.Errorf("B made %d Redis calls for %d keyed purchases of a sold-out sale, want 0", after-before, 2*stock+200)
		}
		break
	}

	// The local answers allocate nothing, as the embedded fast path.
	for _, c := range []struct {
		name     string
		user     string
		key      string
		want     surge.Code
		maxAlloc float64
	}{
		{"new key", "w", "0123456789abcdef", surge.CodeSoldOut, 0},
		{"replay", "u0", "k-u0", surge.CodeReserved, 0},
	} {
		var bad int
		allocs := testing.AllocsPerRun(1000, func() {
			out, err := b.Purchase(context.Background(), engine.PurchaseRequest{SaleID: sale,
				Purchase: surge.Purchase{UserID: c.user, IdempotencyKey: c.key, Quantity: 1}})
			if err != nil || out.Code != c.want {
				bad++
			}
		})
		if bad > 0 {
			t.Errorf("%s: %d answers were not %s", c.name, bad, c.want)
		}
		if allocs > c.maxAlloc {
			t.Errorf("%s: %.1f allocations per answer, want at most %.0f", c.name, allocs, c.maxAlloc)
		}
	}
}

// TestKeyedSoldOutUnitsBack: once units come back to a sold-out sale (a
// cancel, a raised stock), no node answers from its copy until it caught
// up again: a key that bought the units on one node replays on the other.
func TestKeyedSoldOutUnitsBack(t *testing.T) {
	for _, c := range []struct {
		name string
		back func(t *testing.T, a *engine.Engine, sale string, order surge.Order)
	}{
		{"Cancel", func(t *testing.T, a *engine.Engine, sale string, o surge.Order) {
			if _, err := a.Cancel(context.Background(), o.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{"StockRaised", func(t *testing.T, a *engine.Engine, sale string, o surge.Order) {
			stock := int64(4)
			if _, err := a.UpdateSale(context.Background(), sale, surge.SalePatch{Stock: &stock}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stores, engines, regs := keyedNodes(t, 2)
			a, b := engines[0], engines[1]
			const sale = "back"
			keyedSale(t, engines, sale, 3, 1)
			var orders []surge.Order
			for i := range 3 {
				out, err := buy(a, sale, fmt.Sprintf("u%d", i), "k", 1)
				if err != nil || out.Code != surge.CodeReserved {
					t.Fatalf("purchase on A: %v %v", out.Code, err)
				}
				orders = append(orders, out.Order)
			}
			proves(t, stores[1], b, sale)

			c.back(t, a, sale, orders[0])
			// B hears of it (the announcement) and stops answering from
			// its copy.
			eventually(t, 10*time.Second, "B's copy no longer proves", func() error {
				if _, st := stores[1].LookupKey(sale, "nobody", "never-used"); st == surge.KeyAbsent {
					return errors.New("still proves")
				}
				return nil
			})
			var again surge.Order
			eventually(t, 10*time.Second, "A sells the units again", func() error {
				out, err := buy(a, sale, "late", "late-key", 1)
				if err != nil || out.Code != surge.CodeReserved {
					return fmt.Errorf("%v %v", out.Code, err)
				}
				again = out.Order
				return nil
			})
			out, err := buy(b, sale, "late", "late-key", 1)
			if err != nil || out.Code != surge.CodeReserved || out.Order.ID != again.ID {
				t.Fatalf("retry on B of the 201 A gave after units came back: %v %v %s, want the order %s", out.Code, err, out.Order.ID, again.ID)
			}
			// Sold out again: B's copy catches up, and then answers the
			// new key itself.
			proves(t, stores[1], b, sale)
			before := redisCalls(t, regs[1])
			if out, err := buy(b, sale, "late", "late-key", 1); err != nil || !out.Replay || !sameOrder(out.Order, again) {
				t.Errorf("retry on B after catching up: %v %v %+v", out.Code, err, out.Order)
			}
			if out, err := buy(b, sale, "other", "other-key", 1); err != nil || out.Code != surge.CodeSoldOut {
				t.Errorf("new key on B after catching up: %v %v", out.Code, err)
			}
			if after := redisCalls(t, regs[1]); after != before {
				t.Errorf("B made %d Redis calls after catching up, want 0", after-before)
			}
		})
	}
}

// TestKeyedSoldOutConcurrent: three nodes, a crowd of keyed buyers, each
// 201 retried on the other nodes while the sale sells out and after, all
// at once (-race): no retry of a 201 is ever refused or answered another
// order, and every node's copy ends up proving.
func TestKeyedSoldOutConcurrent(t *testing.T) {
	const (
		nodes   = 3
		stock   = 60
		buyers  = 24
		perUser = 10 // purchases per buyer goroutine
	)
	stores, engines, _ := keyedNodes(t, nodes)
	const sale = "crowd"
	keyedSale(t, engines, sale, stock, 1)
	var (
		mu   sync.Mutex
		won  []surge.Purchase
		byID = make(map[string]surge.Order)
		wg   sync.WaitGroup
	)
	check := func(node int, p surge.Purchase, want surge.Order) {
		out, err := buy(engines[node], sale, p.UserID, p.IdempotencyKey, p.Quantity)
		if surge.ErrorCode(err) == surge.CodeUnavailable {
			return // a replay still committing: the buyer would retry
		}
		if err != nil || out.Code != surge.CodeReserved || out.Order.ID != want.ID {
			t.Errorf("retry of %s/%s on node %d: %v %v %s, want the order %s", p.UserID, p.IdempotencyKey, node, out.Code, err, out.Order.ID, want.ID)
		}
	}
	for g := range buyers {
		wg.Go(func() {
			for i := range perUser {
				node := (g + i) % nodes
				p := surge.Purchase{UserID: fmt.Sprintf("u%d-%d", g, i), IdempotencyKey: fmt.Sprintf("k%d", i), Quantity: 1}
				out, err := buy(engines[node], sale, p.UserID, p.IdempotencyKey, 1)
				if err != nil || out.Code != surge.CodeReserved {
					continue
				}
				mu.Lock()
				won = append(won, p)
				byID[p.UserID] = out.Order
				mu.Unlock()
				check((node+1)%nodes, p, out.Order)
				check((node+2)%nodes, p, out.Order)
			}
		})
	}
	wg.Wait()
	if len(won) != stock {
		t.Fatalf("%d orders for a stock of %d", len(won), stock)
	}
	// Sold out: every node catches up, and every 201 is retried on every
	// node at once, beside new keys.
	for i := range nodes {
		proves(t, stores[i], engines[i], sale)
	}
	for n := range nodes {
		wg.Go(func() {
			for _, p := range won {
				check(n, p, byID[p.UserID])
			}
		})
		wg.Go(func() {
			for i := range 100 {
				out, err := buy(engines[n], sale, fmt.Sprintf("late%d", i), fmt.Sprintf("late-%d-%d", n, i), 1)
				if err != nil || out.Code != surge.CodeSoldOut {
					t.Errorf("new key on node %d: %v %v", n, out.Code, err)
				}
			}
		})
	}
	wg.Wait()
}
