package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestRecentKeysReadsOnlyLiveSales: every node, as it starts, fills its
// cache of idempotency keys with the newest keyed orders (RecentKeys).
// The statement read every order the cluster ever took, of every sale
// archived or not (no index leads to the newest keyed orders: orders
// are indexed by sale, then position), so a node's start took longer
// with each sale ever held, without bound: at tens of millions of orders,
// minutes, past a Kubernetes startup probe, and the pod was killed and
// started again, for good. It must read about as many orders as it
// returns, of the sales in service only (an archived sale's keys are
// never asked for: its purchases are refused before), and still return
// the newest keyed orders of those, newest first.
func TestRecentKeysReadsOnlyLiveSales(t *testing.T) {
	ctx := context.Background()
	db, conn := openSchema(t, Options{})
	now := time.Now().UTC().Truncate(time.Millisecond)
	// Sale "old", archived, with 20,000 keyed orders; live sales "a" and
	// "b" with 1,000 keyed orders each (interleaved, b's newer), and 1,000
	// orders without a key in "a", the newest of all.
	for _, q := range []string{
		`INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency, starts_at, hold_seconds, created_at, sold, ever)
			SELECT id, id, 100000, 1, 100, 'EUR', $1::timestamptz - interval '1 day', 60, $1::timestamptz - interval '1 day', 0, 0
			FROM unnest(ARRAY['old', 'a', 'b']) id`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
			SELECT 'old' || n, 'old', 'u' || n, 1, 'paid', 'k' || n, $1::timestamptz - interval '2 hours', $1::timestamptz - interval '1 hour'
			FROM generate_series(1, 20000) n`,
		`UPDATE sales SET archived_at = $1, archived_remaining = 0 WHERE id = 'old'`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, idem_key, created_at, expires_at)
			SELECT s || n, s, 'u' || n, 1, 'reserved', 'k' || n, $1::timestamptz, $1::timestamptz + interval '1 hour'
			FROM generate_series(1, 1000) n, unnest(ARRAY['a', 'b']) s ORDER BY n, s`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			SELECT 'nokey' || n, 'a', 'v' || n, 1, 'reserved', $1::timestamptz, $1::timestamptz + interval '1 hour'
			FROM generate_series(1, 1000) n`,
	} {
		if _, err := conn.Exec(ctx, q, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE orders; ANALYZE sales`); err != nil {
		t.Fatal(err)
	}
	const limit = 100
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			got, read := explainReads(t, conn, mode, recentKeysSQL, fmt.Sprint(limit))
			if got != limit {
				t.Fatalf("the statement returned %d rows, want %d", got, limit)
			}
			// Up to limit keyed orders of each live sale, and the orders
			// without a key passed on the way: anything near the archived
			// sale's 20,000 is reading every order.
			if read > 2*limit+1000+50 {
				t.Errorf("it read %d orders to return %d (20,000 of an archived sale, 3,000 of the live ones)", read, got)
			}
		})
	}
	var keys []string
	if err := db.RecentKeys(ctx, limit, func(o surge.Order) {
		if o.Status != surge.OrderReserved {
			t.Errorf("order %s: status %s, want reserved (as first answered)", o.ID, o.Status)
		}
		keys = append(keys, o.ID)
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != limit {
		t.Fatalf("RecentKeys gave %d orders, want %d", len(keys), limit)
	}
	// Newest first: b1000, a1000, b999, a999, ...
	for i, id := range keys {
		n := 1000 - i/2
		want := fmt.Sprintf("b%d", n)
		if i%2 == 1 {
			want = fmt.Sprintf("a%d", n)
		}
		if id != want {
			t.Fatalf("RecentKeys' order %d is %s, want %s (the newest keyed orders of the live sales, newest first): %v", i, id, want, keys)
		}
	}
}
