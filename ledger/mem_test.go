package ledger

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/internal/memusage"
)

// benchSale is the sale of the benchmarks: stock for 2n units, one per
// buyer.
func benchSale(b *testing.B, n int) surge.Sale {
	id, name := "s", "S"
	stock, limit, hold := int64(2*n), int64(1), int64(600)
	sale, err := surge.NewSale(surge.SaleInput{ID: &id, Name: &name, Stock: &stock, PerUserLimit: &limit, StartsAt: &t0, HoldSeconds: &hold}, t0)
	if err != nil {
		b.Fatal(err)
	}
	return sale
}

// benchOrder is the benchmarks' order i: an id of surge.OrderIDs'
// length, a buyer of its own, a key, paid but for one in four.
func benchOrder(sale surge.Sale, i int) surge.Order {
	created := t0.Add(time.Duration(i) * time.Millisecond)
	o := surge.Order{
		ID:     fmt.Sprintf("o_%026d", i),
		SaleID: sale.ID, UserID: fmt.Sprintf("buyer-%07d", i), Quantity: 1, Status: surge.OrderPaid,
		IdempotencyKey: fmt.Sprintf("%016x-%08d", uint64(i)*0x9e3779b97f4a7c15, i),
		CreatedAt:      created, ExpiresAt: created.Add(sale.Hold()),
	}
	if i%4 == 0 {
		o.Status = surge.OrderReserved
	}
	return o
}

// BenchmarkMemory restores a live sale of a million orders, as a store's
// load does (ids of surge.OrderIDs' length, keyed purchases, a quarter
// still reserved, one order per buyer), and reports what the ledger costs
// per order: heap bytes and resident bytes once collected, and the time
// one full collection takes with it live (the collector marks only the
// ledger's few objects when it holds no pointers).
//
//	go test -run '^$' -bench Memory -benchtime 1x ./ledger/
func BenchmarkMemory(b *testing.B) {
	const n = 1_000_000
	sale := benchSale(b, n)
	for b.Loop() {
		before := memusage.Measure()
		l := New(sale)
		for i := range n {
			l.Restore(benchOrder(sale, i), t0)
		}
		after := memusage.Measure()
		began := time.Now()
		runtime.GC()
		gc := time.Since(began)
		b.ReportMetric(float64(after.Heap-before.Heap)/n, "heap-B/order")
		b.ReportMetric(float64(after.RSS-before.RSS)/n, "rss-B/order")
		b.ReportMetric(float64(gc.Microseconds())/1000, "gc-ms")
		if l.Remaining() != sale.Stock-n {
			b.Fatal("orders not restored")
		}
		runtime.KeepAlive(l)
	}
}

// BenchmarkRestore times Restore alone for a sale of a million orders
// shaped as BenchmarkMemory's, made before the clock starts, with the
// state presized as a store's load presizes it (Grow) or not.
//
//	go test -run '^$' -bench Restore -benchtime 3x ./ledger/
func BenchmarkRestore(b *testing.B) {
	const n = 1_000_000
	sale := benchSale(b, n)
	orders := make([]surge.Order, n)
	bytes := 0
	for i := range orders {
		o := benchOrder(sale, i)
		bytes += len(o.ID) + 2*len(o.UserID) + len(o.IdempotencyKey)
		orders[i] = o
	}
	for _, c := range []struct {
		grow  bool
		batch int // RestoreAll's; 0: Restore one at a time
	}{{false, 0}, {true, 0}, {true, 512}} {
		b.Run(fmt.Sprintf("grow=%v/batch=%d", c.grow, c.batch), func(b *testing.B) {
			for b.Loop() {
				l := New(sale)
				if c.grow {
					l.Grow(n)
				}
				if c.batch == 0 {
					for _, o := range orders {
						l.Restore(o, t0)
					}
				}
				for rest := orders; c.batch > 0 && len(rest) > 0; rest = rest[min(c.batch, len(rest)):] {
					l.RestoreAll(rest[:min(c.batch, len(rest))], t0)
				}
				if l.Remaining() != sale.Stock-n {
					b.Fatal("orders not restored")
				}
			}
		})
	}
}

// BenchmarkBuyAfterRestore restores a million orders as a store's load
// does (presized by Grow), then reserves 256 more batches of 1,024 new
// keyed buyers, committing each, as a spike after a restart would: past
// the room the load left, so the state grows under the sale's lock. It
// reports the CPU per new order and the longest batch, where a growth
// that copies what the state holds shows up.
//
//	go test -run '^$' -bench BuyAfterRestore -benchtime 3x ./ledger/
func BenchmarkBuyAfterRestore(b *testing.B) {
	const n, batches, per = 1_000_000, 256, 1024
	sale := benchSale(b, n)
	buys := make([][]surge.Purchase, batches)
	for k := range buys {
		buys[k] = make([]surge.Purchase, per)
		for j := range buys[k] {
			i := n + k*per + j
			buys[k][j] = surge.Purchase{UserID: fmt.Sprintf("buyer-%07d", i),
				IdempotencyKey: fmt.Sprintf("%016x-%08d", uint64(i)*0x9e3779b97f4a7c15, i), Quantity: 1}
		}
	}
	seq := 0
	newID := func() string { seq++; return fmt.Sprintf("o_%026d", n+seq) }
	now := t0.Add(time.Hour)
	for b.Loop() {
		l := New(sale)
		l.Grow(n)
		for i := range n {
			l.Restore(benchOrder(sale, i), t0)
		}
		runtime.GC() // the restore's garbage
		var longest time.Duration
		began := time.Now()
		for _, batch := range buys {
			t := time.Now()
			outs, tent := l.Decide(batch, now, newID)
			l.Commit(tent)
			longest = max(longest, time.Since(t))
			if outs[0].Code != surge.CodeReserved {
				b.Fatalf("outcome %v", outs[0].Code)
			}
		}
		spent := time.Since(began)
		b.ReportMetric(float64(spent.Nanoseconds())/(batches*per), "ns/new-order")
		b.ReportMetric(float64(longest.Microseconds())/1000, "longest-batch-ms")
	}
}
