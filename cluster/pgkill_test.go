package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
	"github.com/surgehq/surge/engine"
	"github.com/surgehq/surge/servicetest"
)

// TestBackendsKilledMidSpike: two nodes sell one sale to a crowd of keyed
// buyers while PostgreSQL ends the nodes' sessions under them
// (pg_terminate_backend, as a restart or an operator would), most of
// them in the middle of a batch's insert. A commit whose outcome the node
// did not hear must not be answered 201 unless PostgreSQL has it, and a
// 503 for an insert that did land must replay it on retry. Each buyer
// retries a 503 with its key on the other node; every 201 is sent once
// more to the other node and must replay the same order. Then the
// guarantees are checked against PostgreSQL.
func TestBackendsKilledMidSpike(t *testing.T) {
	const (
		stock = 40
		limit = 2
		users = 30
		keys  = 3 // per user: demand 90 units for 40
	)
	ns := namespace(t)
	app := ns + "_node"
	var engines []*engine.Engine
	var stores []*cluster.Store
	for i := range 2 {
		cfg := cluster.Config{NodeID: fmt.Sprintf("n%d", i), Prefix: ns, Schema: ns,
			Interval: 100 * time.Millisecond, ConfirmAfter: time.Second}
		s := openStoreAt(t, redisURL(), postgresURL()+"&application_name="+app, cfg)
		e, err := engine.Open(context.Background(), s, engine.Config{MaxBatch: 16, InFlight: 2,
			SyncInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
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
	id, name := "pgkill", "PG kill"
	st, lim, hold := int64(stock), int64(limit), int64(3600)
	engineSale(t, engines[0], surge.SaleInput{ID: &id, Name: &name, Stock: &st, PerUserLimit: &lim, HoldSeconds: &hold})
	eventually(t, 10*time.Second, "node 1 serves the sale", func() error { _, err := engines[1].Sale(id); return err })

	// Each insert takes 40 ms in PostgreSQL, so that the killer finds
	// inserts in flight: for 3 s, every 60 ms, one of the nodes' sessions
	// running one; every tenth time, all of them (the listener, the
	// leader's, idle ones). Then the buyers' retries go through.
	db := servicetest.Conn(t, ns)
	for _, q := range []string{
		`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.04); RETURN NULL; END $$`,
		`CREATE TRIGGER slow_insert BEFORE INSERT ON orders FOR EACH STATEMENT EXECUTE FUNCTION slow_insert()`,
	} {
		if _, err := db.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	stop := make(chan struct{})
	var killed atomic.Int64
	var kwg sync.WaitGroup
	kwg.Go(func() {
		for round, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); round++ {
			select {
			case <-stop:
				return
			case <-time.After(60 * time.Millisecond):
			}
			q := `SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
				WHERE application_name = $1 AND state = 'active' AND query LIKE '%surge_insert_orders%' LIMIT 1) a`
			if round%10 == 9 {
				q = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`
			}
			var n int64
			if err := db.QueryRow(context.Background(), q, app).Scan(&n); err == nil {
				killed.Add(n)
			}
		}
	})

	var (
		mu        sync.Mutex
		confirmed = map[string]surge.Order{}
		unheard   int
	)
	buy := func(node int, p surge.Purchase) (surge.Outcome, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return engines[node].Purchase(ctx, engine.PurchaseRequest{SaleID: id, Purchase: p})
	}
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for k := range keys {
				p := surge.Purchase{UserID: fmt.Sprintf("u%02d", u), IdempotencyKey: fmt.Sprintf("k%d", k), Quantity: 1}
				node := (u + k) % 2
				var out surge.Outcome
				var err error
				for start := time.Now(); ; node = 1 - node {
					out, err = buy(node, p)
					if surge.ErrorCode(err) != surge.CodeUnavailable || time.Since(start) > 12*time.Second {
						break
					}
					time.Sleep(30 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					unheard++
					mu.Unlock()
					continue
				}
				if out.Code != surge.CodeReserved {
					continue
				}
				mu.Lock()
				confirmed[out.Order.ID] = out.Order
				mu.Unlock()
				// The other node replays it: never a 409, never another order.
				for start := time.Now(); ; {
					again, err := buy(1-node, p)
					if surge.ErrorCode(err) == surge.CodeUnavailable && time.Since(start) < 12*time.Second {
						time.Sleep(30 * time.Millisecond)
						continue
					}
					if err != nil {
						t.Errorf("%s/%s: retry on node %d after its 201 (order %s): %v", p.UserID, p.IdempotencyKey, 1-node, out.Order.ID, err)
					} else if again.Code != surge.CodeReserved || again.Order.ID != out.Order.ID {
						t.Errorf("%s/%s: retry on node %d after its 201 (order %s) answered %s, order %q",
							p.UserID, p.IdempotencyKey, 1-node, out.Order.ID, again.Code, again.Order.ID)
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	kwg.Wait()
	t.Logf("%d orders confirmed, %d keys still unavailable after 12 s, %d sessions killed", len(confirmed), unheard, killed.Load())
	if killed.Load() == 0 {
		t.Fatal("no session of the nodes was killed: the attack did not run")
	}
	sl, _ := engines[0].Sale(id)
	truth(t, stores[1], sl.Sale, confirmed)
}
