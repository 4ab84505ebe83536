// Command capacity simulates a spike of buyers on one sale in cluster
// mode with the per-request costs measured on the bench machine
// (docs/capacity.md), so the machines a spike needs and the tier that
// gives out first can be read off a run instead of only worked out by
// hand: where the arithmetic gives averages, the simulation adds the
// queues (a tier at 90 % answers in milliseconds, one at 101 % sheds).
//
// The model: buyers arrive at random (Poisson) and go to a random node.
// A node that knows the sale is sold out answers at once on one of its
// cores. Otherwise the purchase costs its node CPU, joins the node's
// inbox (full: 503), and goes with whatever else waits, up to MaxBatch,
// to Redis: one script call per bucket the batch touches, each on its
// bucket's master. The batch's reservations are then committed in
// PostgreSQL under the sale's row lock, one sale's commits one at a time,
// and the batch is answered. One batch per node at a time
// (--cluster-in-flight 1). A node learns the sale is sold out from a
// Redis answer that shows no stock left, the others Announce after the
// first such answer.
//
// No library fits: a general discrete-event simulator would be more code
// to drive than these few stations, which, fed in time order, know each
// job's finish when it is submitted.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func main() {
	c := Config{}
	flag.Float64Var(&c.Rate, "rate", 1_000_000, "buyers arriving per second")
	flag.DurationVar(&c.Duration, "duration", time.Second, "how long buyers keep arriving")
	flag.Int64Var(&c.Stock, "stock", 1000, "units of the sale (one per buyer)")
	flag.IntVar(&c.Nodes, "nodes", 12, "Surge nodes")
	flag.IntVar(&c.Cores, "cores", 4, "cores per node")
	flag.DurationVar(&c.NodeSoldOut, "node-sold-out", 28600*time.Nanosecond, "node CPU per sold-out answer")
	flag.DurationVar(&c.NodePurchase, "node-purchase", 53*time.Microsecond, "node CPU per purchase sent to Redis (a reservation's whole node cost)")
	flag.IntVar(&c.MaxBatch, "max-batch", 512, "purchases per store call")
	flag.IntVar(&c.Inbox, "inbox", 4096, "purchases a node holds waiting for a batch before it answers 503")
	flag.DurationVar(&c.Announce, "announce", time.Millisecond, "how soon the other nodes learn the sale sold out")
	flag.IntVar(&c.Masters, "masters", 1, "Redis masters")
	flag.IntVar(&c.Buckets, "buckets", 1, "the sale's buckets (--cluster-buckets), spread over the masters")
	flag.DurationVar(&c.RedisCall, "redis-call", 0, "Redis CPU per script call (the measured per-purchase figure includes it at 60 purchases a call)")
	flag.DurationVar(&c.RedisPurchase, "redis-purchase", 10400*time.Nanosecond, "Redis CPU per purchase")
	flag.DurationVar(&c.PGCommit, "pg-commit", 550*time.Microsecond, "PostgreSQL time per commit under the sale's row lock, the flush included")
	flag.DurationVar(&c.PGRow, "pg-row", 8500*time.Nanosecond, "PostgreSQL time per order under the sale's row lock")
	flag.Float64Var(&c.WALBytes, "wal-bytes", 940, "PostgreSQL WAL bytes per order")
	flag.Float64Var(&c.WALBandwidth, "wal-bandwidth", 0, "PostgreSQL WAL bytes a second the primary sustains (0: no limit)")
	flag.Uint64Var(&c.Seed, "seed", 1, "random seed")
	flag.Parse()
	r, err := Run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(2)
	}
	report(os.Stdout, c, r)
}

// report prints a run as a Markdown table, with the tier nearest its limit
// named.
func report(w io.Writer, c Config, r Result) {
	fmt.Fprintf(w, "%.0f buyers/s for %v on a sale of %d; %d nodes × %d cores, %d Redis masters, %d buckets\n\n",
		c.Rate, c.Duration, c.Stock, c.Nodes, c.Cores, c.Masters, c.Buckets)
	soldOut := "never"
	if r.SoldOutAt >= 0 {
		soldOut = r.SoldOutAt.Round(time.Microsecond).String()
	}
	fmt.Fprintf(w, "| buyers | 201 | 409 | 503 (inbox full) | sold out at | backlog after the last arrival |\n|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(w, "| %d | %d | %d | %d | %s | %v |\n\n", r.Arrivals, r.Reserved, r.Rejected, r.Shed, soldOut, r.Drain.Round(time.Microsecond))
	perBatch, perCommit := 0.0, 0.0
	if r.Batches > 0 {
		perBatch = float64(r.Batched) / float64(r.Batches)
	}
	if r.Commits > 0 {
		perCommit = float64(r.Reserved) / float64(r.Commits) // every reserved order is committed by the run's end
	}
	fmt.Fprintf(w, "| busy share of the run | nodes' cores | busiest Redis master | the sale's row lock in PostgreSQL |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(w, "| | %.1f %% | %.1f %% | %.1f %% |\n\n", 100*r.NodeCPU, 100*r.Redis, 100*r.PGLock)
	fmt.Fprintf(w, "%d batches to Redis (%.1f purchases each), %d commits (%.1f orders each)\n\n", r.Batches, perBatch, r.Commits, perCommit)
	fmt.Fprintf(w, "| latency, ms | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|\n")
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	for _, h := range []struct {
		name string
		h    *hdrhistogram.Histogram
	}{{"201", r.Reserve}, {"409", r.Reject}, {"every answer", r.All}} {
		if h.h.TotalCount() == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %.3f | %.3f |\n", h.name,
			ms(h.h.ValueAtQuantile(50)), ms(h.h.ValueAtQuantile(99)), ms(h.h.ValueAtQuantile(99.9)), ms(h.h.Max()))
	}
}
