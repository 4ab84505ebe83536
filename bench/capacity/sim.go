package main

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one simulated spike on one sale in cluster mode: who arrives,
// what each tier costs per request (measured figures, docs/capacity.md),
// and how many of each there are.
type Config struct {
	Rate     float64       // buyers arriving per second (Poisson)
	Duration time.Duration // how long they keep arriving
	Stock    int64         // the sale's units; each buyer asks for one

	Nodes, Cores int // Surge nodes, cores each
	// Node CPU per buyer: a sold-out answer once the node knows the sale
	// is sold out; otherwise the whole of a purchase that goes to Redis
	// (HTTP exchange, batching, answer), charged before it joins a batch.
	NodeSoldOut, NodePurchase time.Duration
	MaxBatch                  int // purchases per store call (engine.DefaultMaxBatch)
	Inbox                     int // a node's bound on waiting purchases; past it, 503 (engine.DefaultInboxSize)
	// Announce is how soon the other nodes learn the sale sold out, after
	// the batch that took the last unit (Redis pub/sub).
	Announce time.Duration

	Masters, Buckets int // Redis masters; the sale's buckets, spread over them
	// Redis per script call and per purchase in it, on one master's one
	// thread. A batch makes one call per bucket it touches, all at once.
	RedisCall, RedisPurchase time.Duration

	// PostgreSQL per commit of a batch's reservations: the sale's row is
	// locked from the insert to the end of the commit, so one sale's
	// commits run one at a time. PGCommit is per commit (the fsync
	// included), PGRow per order inserted, WALBytes per order written at
	// WALBandwidth bytes a second (0: no limit).
	PGCommit, PGRow time.Duration
	WALBytes        float64
	WALBandwidth    float64

	Seed uint64
}

// validate refuses a configuration the simulation cannot run.
func (c Config) validate() error {
	switch {
	case c.Rate <= 0 || c.Duration <= 0:
		return fmt.Errorf("rate and duration must be positive")
	case c.Stock < 0:
		return fmt.Errorf("stock must not be negative")
	case c.Nodes < 1 || c.Cores < 1 || c.Masters < 1 || c.Buckets < 1:
		return fmt.Errorf("nodes, cores, masters and buckets must be at least 1")
	case c.MaxBatch < 1 || c.Inbox < 1:
		return fmt.Errorf("max batch and inbox must be at least 1")
	case c.NodeSoldOut < 0 || c.NodePurchase < 0 || c.Announce < 0 || c.RedisCall < 0 || c.RedisPurchase < 0 ||
		c.PGCommit < 0 || c.PGRow < 0 || c.WALBytes < 0 || c.WALBandwidth < 0:
		return fmt.Errorf("costs must not be negative")
	}
	return nil
}

// Result is what the spike did: every buyer's answer, when the sale sold
// out, how busy each tier was, and the latencies buyers saw.
type Result struct {
	Arrivals, Reserved, Rejected, Shed int64
	SoldOutAt                          time.Duration // -1: never
	End                                time.Duration // the last answer
	// Busy share of each tier over the run: all nodes' cores, the busiest
	// Redis master, the sale's row lock in PostgreSQL. The nodes send
	// their next batch as soon as the last one is answered, so Redis and
	// the lock are busy whenever anything waits: a high share there is
	// not a wall by itself. Drain says whether a tier fell behind.
	NodeCPU, Redis, PGLock float64
	Batches, Batched       int64 // batches sent to Redis, purchases in them
	Commits                int64
	Drain                  time.Duration           // from the last arrival to the last answer: the backlog
	Reserve, Reject, All   *hdrhistogram.Histogram // µs from arrival to answer
}

// station is a FIFO queue in front of servers with given service times:
// a core pool, a Redis master's thread, a sale's row lock. Work reaches
// it in time order (the simulation submits it as its events come), so a
// job's finish is known when it is submitted: it starts when it arrives
// or when the first server frees, whichever is later.
type station struct {
	free []int64 // when each server is next free, ns
	busy int64   // service given, ns
}

func newStation(servers int) *station { return &station{free: make([]int64, servers)} }

// serve queues a job of duration d arriving at now and returns when it
// ends.
func (s *station) serve(now, d int64) int64 {
	i := 0
	for j := range s.free {
		if s.free[j] < s.free[i] {
			i = j
		}
	}
	end := max(now, s.free[i]) + d
	s.free[i] = end
	s.busy += d
	return end
}

func (s *station) utilization(window int64) float64 {
	return float64(s.busy) / float64(window*int64(len(s.free)))
}

type node struct {
	cpu       *station
	inbox     []int64 // arrival times of purchases waiting for a batch
	batching  bool    // a batch is at Redis or PostgreSQL (one at a time, --cluster-in-flight 1)
	knowsSold bool
}

// batch is a node's store call: its purchases' arrival times, and how
// many of them got a unit.
type batch struct {
	node     int
	arrivals []int64
	reserved int
}

type eventKind uint8

const (
	arrive    eventKind = iota // a buyer reaches a node
	enqueue                    // the node has handled the request; it joins the inbox
	decided                    // Redis answered the batch
	committed                  // PostgreSQL committed the batch's orders
	learn                      // a node hears the sale sold out
)

type event struct {
	at   int64
	kind eventKind
	node int
	seen int64 // arrive, enqueue: the buyer's arrival
	b    *batch
}

type events []event

func (q events) Len() int           { return len(q) }
func (q events) Less(i, j int) bool { return q[i].at < q[j].at }
func (q events) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)        { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// sim is one run's state.
type sim struct {
	c       Config
	rng     *rand.Rand
	q       events
	nodes   []*node
	masters []*station
	pg      *station // the sale's row lock
	left    int64
	last    int64 // the last arrival, ns
	res     Result
}

// Run simulates the spike c describes.
func Run(c Config) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	s := &sim{c: c, rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15)), pg: newStation(1), left: c.Stock}
	for range c.Nodes {
		s.nodes = append(s.nodes, &node{cpu: newStation(c.Cores)})
	}
	for range c.Masters {
		s.masters = append(s.masters, newStation(1))
	}
	hist := func() *hdrhistogram.Histogram { return hdrhistogram.New(1, 3_600_000_000, 3) }
	s.res = Result{SoldOutAt: -1, Reserve: hist(), Reject: hist(), All: hist()}
	if c.Stock == 0 {
		s.soldOut(0, -1)
	}
	s.push(event{at: s.gap(), kind: arrive})
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(event)
		s.step(e)
	}
	window := max(int64(s.res.End), int64(c.Duration))
	var nodeBusy int64
	for _, n := range s.nodes {
		nodeBusy += n.cpu.busy
	}
	s.res.NodeCPU = float64(nodeBusy) / float64(window*int64(c.Nodes*c.Cores))
	for _, m := range s.masters {
		s.res.Redis = max(s.res.Redis, m.utilization(window))
	}
	s.res.PGLock = s.pg.utilization(window)
	s.res.Drain = max(s.res.End-time.Duration(s.last), 0)
	return s.res, nil
}

func (s *sim) push(e event) { heap.Push(&s.q, e) }

// gap is the time to the next arrival, ns.
func (s *sim) gap() int64 { return int64(s.rng.ExpFloat64() / s.c.Rate * 1e9) }

func (s *sim) step(e event) {
	switch e.kind {
	case arrive:
		if next := e.at + s.gap(); next < int64(s.c.Duration) {
			s.push(event{at: next, kind: arrive})
		}
		s.res.Arrivals++
		s.last = e.at
		i := s.rng.IntN(len(s.nodes))
		n := s.nodes[i]
		if n.knowsSold {
			s.answer(e.at, n.cpu.serve(e.at, int64(s.c.NodeSoldOut)), false)
			return
		}
		s.push(event{at: n.cpu.serve(e.at, int64(s.c.NodePurchase)), kind: enqueue, node: i, seen: e.at})
	case enqueue:
		n := s.nodes[e.node]
		if len(n.inbox) >= s.c.Inbox {
			s.res.Shed++
			s.record(e.seen, e.at, nil)
			return
		}
		n.inbox = append(n.inbox, e.seen)
		if !n.batching {
			s.startBatch(e.at, e.node)
		}
	case decided:
		b := e.b
		// Redis's answer carries the stock left: once it is none, the
		// node knows, and the first such answer is announced to the rest.
		if s.left == 0 {
			if s.res.SoldOutAt < 0 {
				s.soldOut(e.at, b.node)
			}
			s.nodes[b.node].knowsSold = true
		}
		if b.reserved == 0 {
			s.finish(e.at, b)
			return
		}
		work := int64(s.c.PGCommit) + int64(b.reserved)*int64(s.c.PGRow)
		if s.c.WALBandwidth > 0 {
			work += int64(float64(b.reserved) * s.c.WALBytes / s.c.WALBandwidth * 1e9)
		}
		s.res.Commits++
		s.push(event{at: s.pg.serve(e.at, work), kind: committed, b: b})
	case committed:
		s.finish(e.at, e.b)
	case learn:
		s.nodes[e.node].knowsSold = true
	}
}

// startBatch hands the node's waiting purchases, up to MaxBatch, to
// Redis: one call per bucket the batch touches (a buyer's bucket is the
// hash of its id: here a random draw), on that bucket's master, all at
// once; the batch is decided when the last call returns.
func (s *sim) startBatch(now int64, i int) {
	n := s.nodes[i]
	k := min(len(n.inbox), s.c.MaxBatch)
	b := &batch{node: i, arrivals: append([]int64(nil), n.inbox[:k]...)}
	n.inbox = append(n.inbox[:0], n.inbox[k:]...)
	n.batching = true
	s.res.Batches++
	s.res.Batched += int64(k)
	perBucket := make([]int, s.c.Buckets)
	for range k {
		perBucket[s.rng.IntN(s.c.Buckets)]++
	}
	done := now
	for bucket, m := range perBucket {
		if m == 0 {
			continue // a bucket the batch does not touch gets no call
		}
		work := int64(s.c.RedisCall) + int64(m)*int64(s.c.RedisPurchase)
		done = max(done, s.masters[bucket%len(s.masters)].serve(now, work))
	}
	// Decided in submission order: a bucket that runs dry borrows from
	// the others, so the sale's stock is one count here.
	b.reserved = int(min(int64(k), s.left))
	s.left -= int64(b.reserved)
	s.push(event{at: done, kind: decided, b: b})
}

// finish answers a batch's purchases (the rejected ones of a batch wait
// for its commit too, as Store.Reserve answers a batch at once) and lets
// the node start its next batch.
func (s *sim) finish(now int64, b *batch) {
	for j, seen := range b.arrivals {
		s.answer(seen, now, j < b.reserved)
	}
	n := s.nodes[b.node]
	n.batching = false
	if len(n.inbox) > 0 {
		s.startBatch(now, b.node)
	}
}

// soldOut records when a node first learned the last unit went: that
// node knows at once, the others after Announce.
func (s *sim) soldOut(now int64, by int) {
	s.res.SoldOutAt = time.Duration(now)
	for i, n := range s.nodes {
		if i == by || s.c.Announce == 0 {
			n.knowsSold = true
			continue
		}
		s.push(event{at: now + int64(s.c.Announce), kind: learn, node: i})
	}
}

func (s *sim) answer(seen, at int64, reserved bool) {
	if reserved {
		s.res.Reserved++
		s.record(seen, at, s.res.Reserve)
		return
	}
	s.res.Rejected++
	s.record(seen, at, s.res.Reject)
}

func (s *sim) record(seen, at int64, h *hdrhistogram.Histogram) {
	us := max(int64(math.Round(float64(at-seen)/1e3)), 1)
	if h != nil {
		_ = h.RecordValue(us)
	}
	_ = s.res.All.RecordValue(us)
	s.res.End = max(s.res.End, time.Duration(at))
}
