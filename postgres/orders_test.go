package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/postgres"
)

// TestInsertOrdersRoundTrip: whichever way InsertOrders sends a batch (its
// text columns joined and its times once, or one array per column when the
// values do not allow it), every order reads back as given, an empty key
// as no key.
func TestInsertOrdersRoundTrip(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	later := now.Add(time.Hour)
	for _, c := range []struct {
		name string
		keys []string
		// created of each order, as an offset from now (the same for all
		// lets the times go once)
		created []time.Duration
	}{
		{"one order without a key", []string{""}, nil},
		{"one order with a key", []string{"k1"}, nil},
		{"keys and no keys", []string{"", "k1", "", "k2", ""}, nil},
		{"keys with the characters of array literals", []string{`a,"b"\{c} d`, `NULL`, ` `, `'x'`}, nil},
		{"times differ", []string{"k1", ""}, []time.Duration{0, time.Second}},
		{"a key with a separator", []string{"a\nb", "c\td"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			sl := sale(t, db)
			var want []surge.Order
			for i, k := range c.keys {
				created := now
				if c.created != nil {
					created = now.Add(c.created[i])
				}
				want = append(want, surge.Order{ID: fmt.Sprintf("o%d", i), SaleID: sl.ID, UserID: fmt.Sprintf("u%d", i),
					Quantity: 1, Status: surge.OrderReserved, IdempotencyKey: k, CreatedAt: created, ExpiresAt: later})
			}
			ever, _, err := db.InsertOrders(ctx, sl.ID, 1, want, nil)
			if err != nil || ever != int64(len(want)) {
				t.Fatalf("InsertOrders: ever %d, %v; want %d", ever, err, len(want))
			}
			var got []surge.Order
			if err := db.Orders(ctx, sl.ID, func(o surge.Order) error { got = append(got, o); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d orders read back, want %d", len(got), len(want))
			}
			for i := range want {
				if g, w := got[i], want[i]; g.ID != w.ID || g.UserID != w.UserID || g.IdempotencyKey != w.IdempotencyKey ||
					g.Quantity != w.Quantity || g.Status != w.Status || !g.CreatedAt.Equal(w.CreatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
					t.Errorf("order %d reads back as %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// BenchmarkInsertOrders is a batch's commit as a node makes it, by batch
// size: µs/commit is the call's wall time, from before the sale row's
// lock is taken to after the commit's flush, so it bounds from above how
// long one batch holds the lock that makes one sale's commits take turns
// (bench/capacity's -pg-commit and -pg-row, docs/capacity.md).
func BenchmarkInsertOrders(b *testing.B) {
	for _, n := range []int{1, 60, 512} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			db := open(b)
			sale := newSale(b, db, "bench", 1_000_000_000).ID
			c := newCommitter(n, "u")
			for b.Loop() {
				c.commit(b, db, sale)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/commit")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/order")
		})
	}
}

// BenchmarkInsertOrdersTakingTurns is several nodes (4 × GOMAXPROCS
// goroutines) committing batches of 20 at once, into one sale or spread
// over four: one sale's commits take turns on its row lock (from the
// insert's first statement to the end of the commit's flush), four
// sales' overlap. The gap between the two is what bench/capacity models
// as the lock.
func BenchmarkInsertOrdersTakingTurns(b *testing.B) {
	const nodes, rows = 4, 20
	for _, n := range []int{1, nodes} {
		b.Run(fmt.Sprintf("sales=%d", n), func(b *testing.B) {
			db := open(b)
			sales := make([]string, n)
			for i := range sales {
				sales[i] = newSale(b, db, fmt.Sprintf("bench%d", i), 1_000_000_000).ID
			}
			var next atomic.Int64
			b.SetParallelism(nodes)
			b.RunParallel(func(pb *testing.PB) {
				node := next.Add(1)
				c := newCommitter(rows, fmt.Sprintf("u%d-", node))
				for pb.Next() {
					c.commit(b, db, sales[int(node)%n])
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// committer commits batches of new buyers' orders, as a node does.
type committer struct {
	users string // prefix of its buyers' ids
	n     int    // batches committed
	ids   surge.OrderIDs
	batch []surge.Order
	idOf  []string
}

func newCommitter(rows int, users string) *committer {
	return &committer{users: users, batch: make([]surge.Order, rows), idOf: make([]string, rows)}
}

func (c *committer) commit(tb testing.TB, db *postgres.DB, sale string) {
	now := time.Now().UTC()
	c.ids.Fill(now, c.idOf)
	for j := range c.batch {
		c.batch[j] = surge.Order{ID: c.idOf[j], SaleID: sale, UserID: fmt.Sprintf("%s%d-%d", c.users, c.n, j), Quantity: 1,
			Status: surge.OrderReserved, IdempotencyKey: fmt.Sprintf("k%d", j), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	}
	c.n++
	if _, _, err := db.InsertOrders(context.Background(), sale, 1, c.batch, nil); err != nil {
		tb.Error(err)
	}
}
