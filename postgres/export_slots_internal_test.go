package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/surgehq/surge"
)

// TestExportsLeaveConnections: an order export (GET
// /v1/sales/{id}/orders) holds its pool connection for as long as its
// reader takes, hours for a large sale read slowly, and nothing bounded
// how many ran at once: as many exports as the pool has connections (a
// script exporting every sale in parallel, on a pool the operator made
// small to fit max_connections) left none for purchases, cancels and the
// leader's jobs, which all failed after the call timeout (503) until an
// export ended. Exports now take at most a quarter of the pool (one at
// least); one more is refused at once, overloaded with Retry-After, as
// the embedded store refuses it.
func TestExportsLeaveConnections(t *testing.T) {
	ctx := context.Background()
	db, conn := openSchema(t, Options{MaxConns: 4})
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, q := range []string{
		`INSERT INTO sales (id, name, stock, per_user_limit, price_cents, currency, starts_at, hold_seconds, created_at, sold, ever)
			VALUES ('s', 's', 100, 1, 100, 'EUR', $1::timestamptz - interval '1 day', 60, $1::timestamptz - interval '1 day', 10, 10)`,
		`INSERT INTO orders (id, sale_id, user_id, quantity, status, created_at, expires_at)
			SELECT 'o' || n, 's', 'u' || n, 1, 'paid', $1::timestamptz, $1::timestamptz + interval '1 hour'
			FROM generate_series(1, 10) n`,
	} {
		if _, err := conn.Exec(ctx, q, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// As many exports as the pool has connections, each with a reader
	// that reads nothing more after its first order until released.
	release := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, refused := 0, 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			var se *surge.Error
			err := db.Orders(ctx, "s", func(surge.Order) error {
				if first {
					first = false
					<-release
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ran++
			case errors.As(err, &se) && se.Code == surge.CodeOverloaded && se.RetryAfter > 0:
				refused++
			default:
				t.Errorf("export: %v; want it run or refused overloaded with Retry-After", err)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the exports take their connections
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := db.Sale(cctx, "s")
	cancel()
	close(release)
	wg.Wait()
	if err != nil {
		t.Fatalf("with 4 exports to slow readers on a pool of 4, reading a sale (as a purchase would) failed: %v", err)
	}
	if ran != 1 || refused != 3 {
		t.Errorf("of 4 exports at once on a pool of 4, %d ran and %d were refused; want 1 and 3", ran, refused)
	}
}
