package ledger

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgehq/surge"
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
		before := measure()
		l := New(sale)
		for i := range n {
			l.Restore(benchOrder(sale, i), t0)
		}
		after := measure()
		began := time.Now()
		runtime.GC()
		gc := time.Since(began)
		b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/order")
		b.ReportMetric(float64(after.rss-before.rss)/n, "rss-B/order")
		b.ReportMetric(float64(gc.Microseconds())/1000, "gc-ms")
		if l.Remaining() != sale.Stock-n {
			b.Fatal("orders not restored")
		}
		runtime.KeepAlive(l)
	}
}

type usage struct{ heap, rss uint64 }

// measure collects, returns freed memory to the OS, and reads the live
// heap and the resident set.
func measure() usage {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{heap: ms.HeapInuse}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			u.rss = pages * uint64(os.Getpagesize())
		}
	}
	return u
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
	for _, grow := range []bool{false, true} {
		b.Run(fmt.Sprintf("grow=%v", grow), func(b *testing.B) {
			for b.Loop() {
				l := New(sale)
				if grow {
					l.Grow(n, bytes)
				}
				for _, o := range orders {
					l.Restore(o, t0)
				}
				if l.Remaining() != sale.Stock-n {
					b.Fatal("orders not restored")
				}
			}
		})
	}
}
