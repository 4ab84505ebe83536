package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestKeyTailsLeaveThePoolAConnection: a node's copies of sold-out sales'
// keys catch up in the background (cluster/keycopy.go), each for up to
// 30 s, one per sale. Many sales sold out at once, their catch-ups slow (a
// large sale, a stalled read), took every connection of the pool, and the
// node's commits, renewals and every other statement waited for one until
// their call timeout. Catch-ups must keep a share of the pool: another
// statement still gets a connection.
func TestKeyTailsLeaveThePoolAConnection(t *testing.T) {
	db, conn := openSchema(t, Options{MaxConns: 4})
	ctx := context.Background()
	// The catch-ups' first read waits behind this lock, keeping their
	// connections, as a slow read does.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE sales IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() { _ = tx.Rollback(ctx) }()
	for i := range 8 { // twice the pool: sales sold out together
		wg.Go(func() {
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, _ = db.KeyTail(tctx, fmt.Sprintf("sold%d", i), 0)
		})
	}
	time.Sleep(300 * time.Millisecond)
	nctx, cancel := context.WithTimeout(ctx, time.Second) // a call timeout
	defer cancel()
	if _, err := db.Now(nctx); err != nil {
		t.Fatalf("a statement beside 8 slow key catch-ups on a pool of 4: %v; want a connection left for it", err)
	}
}
