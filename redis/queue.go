package redis

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/surgehq/surge/waitroom"
)

//go:embed queue.lua
var queueSrc string

var queueScript = goredis.NewScript(queueSrc)

// Queues is the waitroom.Backend of cluster mode: every node serves the
// same waiting rooms from Redis, one script call per join or lookup. A
// lottery's draw runs in one script at the first call at or after the
// start, which for a very large pre-start crowd blocks Redis for as long
// as sorting it takes (about a second per million entries).
type Queues struct {
	c      Client
	prefix string
	max    atomic.Int64 // SetMaxEntries changes it
}

// NewQueues returns the queues kept in c under prefix, at most maxEntries
// per sale (waitroom.DefaultMaxEntries if < 1).
func NewQueues(c Client, prefix string, maxEntries int) *Queues {
	if prefix == "" {
		prefix = "surge"
	}
	q := &Queues{c: c, prefix: prefix}
	q.SetMaxEntries(maxEntries)
	return q
}

// SetMaxEntries changes the bound of each queue (waitroom.DefaultMaxEntries
// if maxEntries < 1) for the joins that follow.
func (qs *Queues) SetMaxEntries(maxEntries int) {
	if maxEntries < 1 {
		maxEntries = waitroom.DefaultMaxEntries
	}
	qs.max.Store(int64(maxEntries))
}

// DroppedFor is how long a dropped queue's mark refuses joins (Drop):
// far longer than a join in flight takes, or a node takes to hear of an
// archive.
const DroppedFor = time.Hour

// keys are the queue's six keys, then the mark of a dropped queue.
func (qs *Queues) keys(sale string) []string {
	b := qs.prefix + ":{wr:" + sale + "}:"
	return []string{b + "users", b + "seq", b + "draws", b + "slots", b + "last", b + "drawn", b + "dropped"}
}

func (qs *Queues) run(ctx context.Context, op string, q waitroom.Queue, user string, now time.Time) (waitroom.Entry, int64, error) {
	lottery := "0"
	if q.Lottery {
		lottery = "1"
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	// 52 bits: a sorted-set score is a double; zero stays "no draw".
	draw := max(binary.BigEndian.Uint64(b[:])>>12, 1)
	_, _ = rand.Read(b[:])
	epoch := max(binary.BigEndian.Uint64(b[:]), 1)
	res, err := queueScript.Run(ctx, qs.c, qs.keys(q.SaleID), op, user, now.UnixMilli(), q.Schedule.Start.UnixMilli(),
		lottery, q.Schedule.FirstFree(now), qs.max.Load(), draw, strconv.FormatUint(epoch, 10)).Slice()
	if err != nil {
		return waitroom.Entry{}, 0, fmt.Errorf("redis: waiting room of sale %s: %w", q.SaleID, err)
	}
	code, _ := res[0].(int64)
	if code < 0 {
		return waitroom.Entry{}, code, nil
	}
	s, _ := res[1].(string)
	e, err := parseEntry(s)
	return e, code, err
}

func parseEntry(s string) (waitroom.Entry, error) {
	f := strings.Split(s, "|")
	if len(f) != 3 {
		return waitroom.Entry{}, fmt.Errorf("redis: malformed queue entry %q", s)
	}
	seq, err1 := strconv.ParseInt(f[0], 10, 64)
	draw, err2 := strconv.ParseUint(f[1], 10, 64)
	slot, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return waitroom.Entry{}, fmt.Errorf("redis: malformed queue entry %q", s)
	}
	return waitroom.Entry{Seq: seq, Draw: draw, Slot: slot}, nil
}

// Join implements waitroom.Backend.
func (qs *Queues) Join(ctx context.Context, q waitroom.Queue, userID string, now time.Time) (waitroom.Entry, bool, error) {
	e, code, err := qs.run(ctx, "join", q, userID, now)
	switch {
	case err != nil:
		return waitroom.Entry{}, false, err
	case code == -1:
		return waitroom.Entry{}, false, waitroom.ErrFull
	case code == -3:
		return waitroom.Entry{}, false, waitroom.ErrDropped
	}
	return e, code == 1, nil
}

// Lookup implements waitroom.Backend.
func (qs *Queues) Lookup(ctx context.Context, q waitroom.Queue, userID string, now time.Time) (waitroom.Entry, error) {
	e, code, err := qs.run(ctx, "lookup", q, userID, now)
	switch {
	case err != nil:
		return waitroom.Entry{}, err
	case code == -2:
		return waitroom.Entry{}, waitroom.ErrNotQueued
	}
	return e, nil
}

// Between implements waitroom.Backend. It runs the queue's script, as a
// join or a lookup does, so that a slots key that went (evicted) is
// rebuilt from the users hash before it is counted: a read of one's place
// with a ticket that carries its slot makes no other script call.
func (qs *Queues) Between(ctx context.Context, q waitroom.Queue, from, to int64) (int64, error) {
	if to <= from {
		return 0, nil
	}
	n, err := queueScript.Run(ctx, qs.c, qs.keys(q.SaleID), "count", from, to).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis: waiting room of sale %s: %w", q.SaleID, err)
	}
	return n, nil
}

// Epoch implements waitroom.Backend. The first join sets a queue's epoch
// beside its entries, so it survives node restarts (every node serves the
// same places) and disappears with the entries if Redis loses them; 0 when
// there is none. A ticket that carries its slot is checked with Place
// instead, which reads the epoch and the holder's entry in one round trip.
func (qs *Queues) Epoch(ctx context.Context, q waitroom.Queue) (uint64, error) {
	v, err := qs.c.HGet(ctx, qs.keys(q.SaleID)[0], "").Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: waiting room of sale %s: %w", q.SaleID, err)
	}
	return parseEpoch(q.SaleID, v)
}

// parseEpoch reads the epoch field of a sale's queue.
func parseEpoch(saleID, v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: waiting room of sale %s: malformed epoch %q", saleID, v)
	}
	return n, nil
}

// Place implements waitroom.Backend: the epoch and the user's entry in one
// HMGET, the same single round trip a purchase's check took for the epoch
// alone.
func (qs *Queues) Place(ctx context.Context, q waitroom.Queue, userID string) (uint64, waitroom.Entry, error) {
	vs, err := qs.c.HMGet(ctx, qs.keys(q.SaleID)[0], "", userID).Result()
	if err != nil {
		return 0, waitroom.Entry{}, fmt.Errorf("redis: waiting room of sale %s: %w", q.SaleID, err)
	}
	var epoch uint64
	if v, ok := vs[0].(string); ok {
		if epoch, err = parseEpoch(q.SaleID, v); err != nil {
			return 0, waitroom.Entry{}, err
		}
	}
	v, ok := vs[1].(string)
	if !ok {
		return epoch, waitroom.Entry{}, waitroom.ErrNotQueued
	}
	e, err := parseEntry(v)
	return epoch, e, err
}

// Drop implements waitroom.Backend. The keys share their hash tag, so
// one UNLINK removes them all on Redis Cluster too, in one transaction
// with the mark that refuses joins for DroppedFor: a join that read the
// sale before its archive made the queue again, which nothing dropped.
func (qs *Queues) Drop(ctx context.Context, saleID string) error {
	keys := qs.keys(saleID)
	// UNLINK: a queue holds up to a million buyers, and DEL freed them on
	// Redis's one thread (1.5 s for a million), stalling every sale.
	if _, err := qs.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Unlink(ctx, keys[:6]...)
		p.Set(ctx, keys[6], "1", DroppedFor)
		return nil
	}); err != nil {
		return fmt.Errorf("redis: drop the waiting room of sale %s: %w", saleID, err)
	}
	return nil
}

var _ waitroom.Backend = (*Queues)(nil)
