package cluster_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/cluster"
)

// BenchmarkReserve: one batch of n purchases by distinct buyers per
// iteration through Redis and PostgreSQL (the cost of a batch, including
// PostgreSQL's guard: the sale row's update and each buyer's live units).
// Its wall time is mostly Redis's and PostgreSQL's; cpu-µs/purchase is
// the node's own (this process's user and system time).
func BenchmarkReserve(b *testing.B) {
	for _, n := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			ns := namespace(b)
			s := openStore(b, ns, cluster.Config{})
			defer s.Close()
			sl := mustSale(b, s, "bench", 1_000_000_000, 1)
			batch := make([]surge.Purchase, n)
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				for j := range batch {
					batch[j] = surge.Purchase{UserID: fmt.Sprintf("u%d-%d", i, j), IdempotencyKey: "k", Quantity: 1}
				}
				out, _, err := reserve(s, sl.ID, batch...)
				if err != nil || out[0].Code != surge.CodeReserved {
					b.Fatalf("%+v %v", out[0], err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/purchase")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/purchase")
		})
	}
}

// BenchmarkReserveTwoNodes: two nodes each commit a batch of 64 into the
// same sale at once, per iteration: the inserts of one sale now take the
// sale row's lock in turn (PostgreSQL's guard) instead of sharing it.
func BenchmarkReserveTwoNodes(b *testing.B) {
	const n = 64
	ns := namespace(b)
	var nodes [2]*cluster.Store
	for i := range nodes {
		nodes[i] = openStore(b, ns, cluster.Config{NodeID: fmt.Sprintf("n%d", i)})
		defer nodes[i].Close()
	}
	sl := mustSale(b, nodes[0], "bench", 1_000_000_000, 1)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var wg sync.WaitGroup
		for k, s := range nodes {
			wg.Go(func() {
				batch := make([]surge.Purchase, n)
				for j := range batch {
					batch[j] = surge.Purchase{UserID: fmt.Sprintf("u%d-%d-%d", i, k, j), IdempotencyKey: "k", Quantity: 1}
				}
				out, _, err := reserve(s, sl.ID, batch...)
				if err != nil || out[0].Code != surge.CodeReserved {
					b.Errorf("%+v %v", out, err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*2*n), "µs/purchase")
}
