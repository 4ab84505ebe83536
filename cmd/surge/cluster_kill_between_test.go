package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/api"
	"github.com/surgehq/surge/client"
	"github.com/surgehq/surge/servicetest"
)

// TestClusterKilledBetweenRedisAndPostgres: node a is SIGKILLed with two
// batches between Redis and PostgreSQL: one insert inside PostgreSQL (it
// commits after the node died: PostgreSQL notices the closed connection
// only when it answers), the other waiting for the sale's row behind it,
// whose session PostgreSQL then ends (it never commits). Retried on node
// b, the first key replays the order that landed, the second buys once;
// each buyer has one order, and the units the dead node took in Redis
// come back once: the stock left equals the stock less the live orders,
// and the crowd after sells exactly the rest.
func TestClusterKilledBetweenRedisAndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	const stock = 6
	args := clusterArgs(t)
	_, ns, _ := strings.Cut(args[3], "search_path=") // --postgres-url
	token := "cluster-admin-token"
	b := startProc(t, t.TempDir(), token, append(args, "--node-id", "b")...)
	aArgs := append([]string(nil), args...)
	aArgs[3] += "&application_name=" + ns + "_a"
	a := startProc(t, t.TempDir(), token, append(aArgs, "--node-id", "a", "--cluster-in-flight", "2")...)
	saleID := createSale(t, b.base, token, stock, 1)
	ctx := t.Context()

	db := servicetest.Conn(t, ns)
	for _, q := range []string{
		`CREATE FUNCTION stall_victim() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.user_id = 'victim1' THEN PERFORM pg_sleep(1.8); END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER stall_victim BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION stall_victim()`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	buyer := func(base, user string) *client.Client {
		c := client.New(base, "").AsUser(user)
		c.Retry = client.RetryPolicy{MaxAttempts: 1}
		return c
	}
	buy := func(base, user, key string) (client.Purchase, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return buyer(base, user).Purchase(ctx, saleID, client.PurchaseOptions{IdempotencyKey: key, Quantity: 1})
	}
	// a must serve the sale before the victims buy there.
	servicetest.Eventually(t, 10*time.Second, "node a serves the sale", func() error {
		_, err := client.New(a.base, token).Sale(ctx, saleID)
		return err
	})
	go buy(a.base, "victim1", "kv1") //nolint:errcheck // its node dies
	waiting := func(cond string) (int32, error) {
		var pid int32
		err := db.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND `+cond,
			ns+"_a").Scan(&pid)
		return pid, err
	}
	servicetest.Eventually(t, 10*time.Second, "victim1's insert sleeps in PostgreSQL", func() error {
		_, err := waiting(`wait_event = 'PgSleep'`)
		return err
	})
	go buy(a.base, "victim2", "kv2") //nolint:errcheck // its node dies
	var second int32
	servicetest.Eventually(t, 10*time.Second, "victim2's insert waits for the sale's row", func() (err error) {
		second, err = waiting(`wait_event_type = 'Lock' AND query LIKE '%surge_insert_orders%'`)
		return err
	})
	if st := a.stop(t, syscall.SIGKILL, 10*time.Second); st.Success() {
		t.Fatalf("surge exited successfully after SIGKILL: %v", st)
	}
	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend($1)`, second); err != nil {
		t.Fatal(err)
	}

	// Each victim retries its key on b until it is answered: one order each.
	got := map[string]string{}
	for _, v := range []struct{ user, key string }{{"victim1", "kv1"}, {"victim2", "kv2"}} {
		servicetest.Eventually(t, 15*time.Second, v.user+"'s retry on b", func() error {
			p, err := buy(b.base, v.user, v.key)
			if err != nil {
				if surge.HasCode(err, surge.CodeUnavailable) || surge.HasCode(err, surge.CodeRateLimited) {
					time.Sleep(200 * time.Millisecond) // as Retry-After asks, roughly
					return err
				}
				t.Fatalf("%s's retry on b: %v", v.user, err)
			}
			got[v.user] = p.Order.ID
			return nil
		})
	}
	var landed string
	if err := db.QueryRow(ctx, `SELECT id FROM orders WHERE user_id = 'victim1'`).Scan(&landed); err != nil {
		t.Fatalf("victim1's insert, stalled past its node's death, did not land: %v", err)
	}
	if got["victim1"] != landed {
		t.Errorf("victim1's retry answered order %s, PostgreSQL holds %s", got["victim1"], landed)
	}
	reconciled(t, b.base, token, saleID, stock, 15*time.Second)

	// The crowd buys the rest: exactly stock units live at the end.
	sold := 0
	for i := range 2 * stock {
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			_, err := buy(b.base, fmt.Sprintf("u%d", i), "k")
			if err == nil {
				sold++
			}
			if !surge.HasCode(err, surge.CodeUnavailable) || time.Since(start) > 10*time.Second {
				if err != nil && !surge.HasCode(err, surge.CodeSoldOut) {
					t.Errorf("buyer u%d: %v", i, err)
				}
				break
			}
		}
	}
	var live, orders int64
	per := map[string]int64{}
	err := client.New(b.base, token).Orders(ctx, saleID, func(o api.Order) error {
		orders++
		per[o.UserID]++
		if o.Status == "reserved" || o.Status == "paid" {
			live += o.Quantity
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for u, n := range per {
		if n > 1 {
			t.Errorf("buyer %s has %d orders", u, n)
		}
	}
	if live != stock || sold != stock-2 {
		t.Errorf("%d units live of %d after the crowd (%d sold to it, want %d)", live, stock, sold, stock-2)
	}
}
