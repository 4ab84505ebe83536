package waitroom

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Queue names one sale's queue and the rules a backend needs to place
// buyers in it.
type Queue struct {
	SaleID   string
	Schedule Schedule
	// Lottery: buyers who join before Schedule.Start are admitted in the
	// order of a random draw, made at the start; later ones queue FIFO
	// behind them. Otherwise every buyer queues FIFO.
	Lottery bool
}

// Unassigned is the Slot of a lottery entry before the draw.
const Unassigned = -1

// Entry is one buyer's place in a queue.
type Entry struct {
	Seq  int64  // 1 for the first buyer who joined, 2 for the next...
	Draw uint64 // a lottery entry's random draw (joined before the start); else 0
	// Slot is the admit slot (see Schedule), Unassigned until a
	// lottery's draw. Once assigned it never changes.
	Slot int64
}

var (
	// ErrNotQueued: the buyer has no entry in the queue.
	ErrNotQueued = errors.New("waitroom: not in the queue")
	// ErrFull: the queue holds as many entries as the backend allows.
	ErrFull = errors.New("waitroom: the queue is full")
	// ErrDropped: the queue was dropped (its sale archived) and takes
	// nobody again.
	ErrDropped = errors.New("waitroom: the queue was dropped with its archived sale")
	// ErrMoved: the in-memory queues were handed to a new process
	// (Memory.Export), which places buyers from then on; a place given
	// here after the copy would be unknown there.
	ErrMoved = errors.New("waitroom: the queues were handed over to a new process")
)

// Backend stores queues. The in-memory one serves a single process; a
// shared one (Redis) lets every node of a cluster serve the same queue.
// Each method must be atomic per queue. Sketch of a Redis backend, one Lua
// script per call:
//
//   - Join: HGET q:users user; if absent, INCR q:seq, and either (lottery,
//     before the start) ZADD q:draw <random> user, or (otherwise) take
//     slot = max(GET q:last + 1, FirstFree(now)), SET q:last, ZADD q:slots
//     slot user; then HSET q:users user <seq,draw,slot>. The draw is the
//     first call at or after the start (SETNX q:drawn): ZRANGE q:draw by
//     score gives slots 0..N-1.
//   - Lookup: HGET q:users user (after the draw if due).
//   - Between: ZCOUNT q:slots from (to.
//
// Times are the caller's: nodes must keep their clocks in sync (NTP). The
// Room passes its own clock, which stands still while the sale is paused.
type Backend interface {
	// Join adds userID to the queue at now and reports created, or returns
	// the entry the user already has: joining again keeps one's place.
	// ErrFull when the queue may take no one else.
	Join(ctx context.Context, q Queue, userID string, now time.Time) (e Entry, created bool, err error)
	// Lookup returns userID's entry; ErrNotQueued if there is none.
	Lookup(ctx context.Context, q Queue, userID string, now time.Time) (Entry, error)
	// Between counts the entries whose slot is in [from, to).
	Between(ctx context.Context, q Queue, from, to int64) (int64, error)
	// Epoch names the queue's current incarnation: a nonzero number that
	// changes whenever the queue's places are lost (the process of an
	// in-memory queue restarted, a Redis queue's keys vanished), and 0
	// while the queue has no epoch (nobody joined it). Tickets carry it,
	// so a ticket for a place that was lost, which the queue may since
	// have handed to someone else, is refused.
	Epoch(ctx context.Context, q Queue) (uint64, error)
	// Place reads the queue's epoch (as Epoch) and userID's entry (as
	// Lookup, without making a draw) at one instant; ErrNotQueued, with
	// the epoch, if the user has no entry. A ticket that carries its slot
	// is checked against both: a queue that came back older (Redis
	// reloaded a snapshot, a lagging replica was promoted) keeps its epoch
	// but not the places handed out since, which it may hand out again.
	Place(ctx context.Context, q Queue, userID string) (epoch uint64, e Entry, err error)
	// Drop removes a sale's queue, entries and epoch: the sale was
	// archived and will never admit anyone again. Dropping a queue that
	// does not exist does nothing. A join that comes after, which read
	// the sale before its archive (in flight, or on a node that has not
	// heard of it yet), must not make the queue again, where nothing
	// would drop it: Join answers ErrDropped from then on (the in-memory
	// backend for the process's life, Redis for redis.DroppedFor).
	Drop(ctx context.Context, saleID string) error
}

// DefaultMaxEntries bounds a queue of the in-memory backend.
const DefaultMaxEntries = 1_000_000

// Memory is the in-memory Backend. Each sale's queue holds at most
// maxEntries entries, of about 130 bytes each with short user ids (the id,
// the entry, its slot and the map's overhead; measured), so a full queue
// of the default size takes about 130 MB. Queues live as long as the
// process (or until dropped): a restart empties them, and the new queues'
// epochs void the tickets of the old one. An upgrade hands them to the new
// process instead (Export, Import), epochs and all.
type Memory struct {
	max    atomic.Int64 // SetMaxEntries changes it
	moved  atomic.Bool  // Export ran: set under mu, read under a queue's mu
	mu     sync.Mutex
	queues map[string]*memQueue
	// dropped are the sales whose queues were dropped: a few bytes per
	// archived sale, whose ids are never used again.
	dropped map[string]struct{}
}

type memQueue struct {
	epoch  uint64 // random, nonzero: this incarnation of the queue
	mu     sync.Mutex
	users  map[string]Entry
	slots  []int64 // every assigned slot, ascending
	seq    int64
	last   int64 // the highest assigned slot; -1 for none
	drawn  bool
	rng    *rand.Rand
	undraw int // lottery entries waiting for the draw
}

// NewMemory returns an in-memory backend whose queues hold at most
// maxEntries entries each (DefaultMaxEntries if maxEntries < 1).
func NewMemory(maxEntries int) *Memory {
	if maxEntries < 1 {
		maxEntries = DefaultMaxEntries
	}
	m := &Memory{queues: make(map[string]*memQueue), dropped: make(map[string]struct{})}
	m.SetMaxEntries(maxEntries)
	return m
}

// SetMaxEntries changes the bound of each queue (DefaultMaxEntries if
// maxEntries < 1) for the joins that follow; a queue already over a
// lowered bound keeps its entries and admits no newcomer until below it.
func (m *Memory) SetMaxEntries(maxEntries int) {
	if maxEntries < 1 {
		maxEntries = DefaultMaxEntries
	}
	m.max.Store(int64(maxEntries))
}

// queue is saleID's queue; nil if it has none, or, with create, if it was
// dropped.
func (m *Memory) queue(saleID string, create bool) *memQueue {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[saleID]
	if _, dropped := m.dropped[saleID]; q == nil && create && !dropped && !m.moved.Load() {
		q = newMemQueue(0)
		m.queues[saleID] = q
	}
	return q
}

// newMemQueue is an empty queue of the given epoch (0: a random one).
func newMemQueue(epoch uint64) *memQueue {
	// Draws must be unpredictable, or a bot could pick the accounts
	// that win: ChaCha8 keyed from the system's CSPRNG.
	var seed [40]byte          // the draw's key, then the epoch: tickets show the epoch
	_, _ = crand.Read(seed[:]) // never fails on supported platforms (Go 1.24+)
	if epoch == 0 {
		epoch = max(binary.LittleEndian.Uint64(seed[32:]), 1)
	}
	return &memQueue{epoch: epoch, users: make(map[string]Entry), last: -1,
		rng: rand.New(rand.NewChaCha8([32]byte(seed[:32])))}
}

// Drop implements Backend.
func (m *Memory) Drop(_ context.Context, saleID string) error {
	m.mu.Lock()
	if m.moved.Load() {
		m.mu.Unlock()
		return ErrMoved
	}
	delete(m.queues, saleID)
	m.dropped[saleID] = struct{}{}
	m.mu.Unlock()
	return nil
}

// Join implements Backend.
func (m *Memory) Join(_ context.Context, q Queue, userID string, now time.Time) (Entry, bool, error) {
	mq := m.queue(q.SaleID, true)
	if mq == nil && m.moved.Load() {
		return Entry{}, false, ErrMoved
	}
	if mq == nil {
		return Entry{}, false, ErrDropped
	}
	mq.mu.Lock()
	defer mq.mu.Unlock()
	if m.moved.Load() {
		return Entry{}, false, ErrMoved
	}
	mq.drawIfDue(q, now)
	if e, ok := mq.users[userID]; ok {
		return e, false, nil
	}
	if int64(len(mq.users)) >= m.max.Load() {
		return Entry{}, false, ErrFull
	}
	mq.seq++
	e := Entry{Seq: mq.seq, Slot: Unassigned}
	if q.Lottery && !mq.drawn {
		// Zero is kept for "no draw": 2^-64 of the range lost.
		e.Draw = max(mq.rng.Uint64(), 1)
		mq.undraw++
	} else {
		e.Slot = max(mq.last+1, q.Schedule.FirstFree(now))
		mq.last = e.Slot
		mq.slots = append(mq.slots, e.Slot)
	}
	mq.users[userID] = e
	return e, true, nil
}

// drawIfDue makes a lottery's draw at the first call at or after the
// start: the entries that joined before it take consecutive slots in the
// order of their draws (ties, at odds of 2^-64, by joining order). The
// slots start at the first free one, which is slot 0 when the draw is
// made at the start, so that a draw made late does not hand out slots
// whose admitted windows have already run out.
func (mq *memQueue) drawIfDue(q Queue, now time.Time) {
	if !q.Lottery || mq.drawn || now.Before(q.Schedule.Start) {
		return
	}
	mq.drawn = true
	type drawn struct {
		user string
		e    Entry
	}
	pre := make([]drawn, 0, mq.undraw)
	for u, e := range mq.users {
		if e.Slot == Unassigned {
			pre = append(pre, drawn{u, e})
		}
	}
	slices.SortFunc(pre, func(a, b drawn) int { return cmp.Or(cmp.Compare(a.e.Draw, b.e.Draw), cmp.Compare(a.e.Seq, b.e.Seq)) })
	// Before the draw a lottery queue has no slot taken: every join was
	// a draw, and the draw runs before any join at or after the start.
	base := q.Schedule.FirstFree(now)
	mq.slots = make([]int64, len(pre))
	for i, d := range pre {
		d.e.Slot = base + int64(i)
		mq.users[d.user] = d.e
		mq.slots[i] = d.e.Slot
	}
	mq.last = base + int64(len(pre)) - 1
	mq.undraw = 0
}

// Lookup implements Backend.
func (m *Memory) Lookup(_ context.Context, q Queue, userID string, now time.Time) (Entry, error) {
	mq := m.queue(q.SaleID, false)
	if mq == nil {
		return Entry{}, ErrNotQueued
	}
	mq.mu.Lock()
	defer mq.mu.Unlock()
	if m.moved.Load() && q.Lottery && !mq.drawn && !now.Before(q.Schedule.Start) {
		// A draw made here would be lost: the new process draws.
		return Entry{}, ErrMoved
	}
	mq.drawIfDue(q, now)
	e, ok := mq.users[userID]
	if !ok {
		return Entry{}, ErrNotQueued
	}
	return e, nil
}

// Between implements Backend.
func (m *Memory) Between(_ context.Context, q Queue, from, to int64) (int64, error) {
	mq := m.queue(q.SaleID, false)
	if mq == nil || to <= from {
		return 0, nil
	}
	mq.mu.Lock()
	defer mq.mu.Unlock()
	i, _ := slices.BinarySearch(mq.slots, from)
	j, _ := slices.BinarySearch(mq.slots, to)
	return int64(j - i), nil
}

// Place implements Backend.
func (m *Memory) Place(_ context.Context, q Queue, userID string) (uint64, Entry, error) {
	mq := m.queue(q.SaleID, false)
	if mq == nil {
		return 0, Entry{}, ErrNotQueued
	}
	mq.mu.Lock()
	defer mq.mu.Unlock()
	e, ok := mq.users[userID]
	if !ok {
		return mq.epoch, Entry{}, ErrNotQueued
	}
	return mq.epoch, e, nil
}

// Epoch implements Backend: a random number per queue, drawn when its
// first buyer joins; 0 before.
func (m *Memory) Epoch(_ context.Context, q Queue) (uint64, error) {
	if mq := m.queue(q.SaleID, false); mq != nil {
		return mq.epoch, nil
	}
	return 0, nil
}
