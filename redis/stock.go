// Package redis keeps cluster mode's live state in Redis: each sale's
// remaining stock, the units every buyer holds, idempotency records, and
// the orders still holding units. A node applies a whole batch of
// purchases with one script call, so Redis decides every purchase of every
// node atomically and in order.
//
// The state is a cache of PostgreSQL's truth (package postgres), rebuilt
// from it whenever it is lost (a Redis restarted empty, keys evicted) or in
// doubt (it came back older than PostgreSQL: its count of units reserved,
// tot, is below PostgreSQL's count of units ever inserted). Each copy
// carries the epoch it was built at; PostgreSQL refuses orders decided
// against an older copy, and any batch that would break a guarantee.
//
// The client is go-redis v9: every call Surge makes is already one batch
// per script call, so rueidis's automatic pipelining of many small commands
// would buy little, while go-redis gives one API over a single server,
// Sentinel and Redis Cluster, and runs scripts by EVALSHA with a fallback to
// EVAL when a restarted server has forgotten them.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// Stock is the live state of every sale under one key prefix.
type Stock struct {
	c      Client
	prefix string
}

// New returns the live state kept in c under prefix (empty: "surge").
// Tests give each dataset its own prefix.
func New(c Client, prefix string) *Stock {
	if prefix == "" {
		prefix = "surge"
	}
	return &Stock{c: c, prefix: prefix}
}

// ErrNoState answers a call on a sale whose live state is missing (never
// built, or Redis restarted empty) or lost part of itself (a key evicted
// or deleted: each hash carries a sentinel field "!" written at install,
// and each sorted set a member "!" scored +inf, which no range the code
// reads reaches): it must be rebuilt from PostgreSQL.
var ErrNoState = errors.New("redis: the sale's live state is missing")

// ErrStaleHold answers a batch whose holds are not the sale's hold in the
// live state (an operator changed it, which starts a new epoch, and the
// deciding node has not heard yet): nothing was reserved; decide again
// with the sale as PostgreSQL holds it.
var ErrStaleHold = errors.New("redis: the batch's hold is not the sale's")

// Layout says where a sale's live state lives: in one hash slot, or split
// into Buckets slots for a sale too hot for one Redis Cluster shard. Each
// bucket holds a share of the stock and the buyers whose id hashes to it,
// with their per-user counts and idempotency records, so a purchase
// touches one bucket only; a bucket that runs dry borrows units from the
// fullest one (Rebalance).
type Layout struct {
	Sale    string
	Buckets int // 1 or more
}

func (l Layout) n() int { return max(l.Buckets, 1) }

// Bucket is the bucket of a buyer (FNV-1a of the user id).
func (l Layout) Bucket(user string) int {
	if l.n() == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(l.n()))
}

// keys of one bucket. The braces are a hash tag: on Redis Cluster every key
// of a bucket lives in one slot, so one script can touch them all.
type saleKeys struct{ meta, users, keys, orders, pending, xout, xin, stages string }

func (s *Stock) keys(l Layout, bucket int) saleKeys {
	tag := l.Sale
	if l.n() > 1 {
		tag += "#" + strconv.Itoa(bucket)
	}
	b := s.prefix + ":{" + tag + "}:"
	return saleKeys{b + "m", b + "u", b + "k", b + "o", b + "p", b + "xo", b + "xi", b + "st"}
}

func (k saleKeys) list() []string { return []string{k.meta, k.users, k.keys, k.orders, k.pending} }

// Totals is the sale's live remaining stock and taken, the units its state
// has reserved since it was built from PostgreSQL's ever count (as
// Decided.Taken), every bucket read in one round trip; ErrNoState if a
// bucket is missing. A node compares taken with its copy of the sale's
// keys (cluster/keycopy.go).
func (s *Stock) Totals(ctx context.Context, l Layout) (remaining, taken int64, err error) {
	cmds := make([]*goredis.SliceCmd, l.n())
	_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for b := range cmds {
			cmds[b] = p.HMGet(ctx, s.keys(l, b).meta, "rem", "tot")
		}
		return nil
	})
	for _, c := range cmds {
		v, err := c.Result()
		if err != nil {
			return 0, 0, fmt.Errorf("redis: totals of sale %s: %w", l.Sale, err)
		}
		rem, err1 := metaInt(v[0])
		tot, err2 := metaInt(v[1])
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("redis: totals of sale %s: %w", l.Sale, ErrNoState)
		}
		remaining += rem
		taken += tot
	}
	return remaining, taken, nil
}

// Inspect checks the sale's live state, every bucket in one round trip:
// ErrNoState if a bucket is missing or lost one of its hashes (the
// sentinels), epoch -1 if the buckets disagree (a rebuild did not finish),
// and taken, the units the state has reserved since it was built from
// PostgreSQL's ever count. A state that rolled back (a snapshot or AOF
// reloaded, a replica promoted) has taken below PostgreSQL's ever count.
func (s *Stock) Inspect(ctx context.Context, l Layout) (epoch, taken int64, err error) {
	keys := make([][]string, l.n())
	args := make([][]any, l.n())
	for b := range keys {
		k := s.keys(l, b)
		keys[b] = append(k.list(), k.xout, k.xin)
	}
	cmds, err := evalMany(ctx, s.c, inspectScript, keys, args, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("redis: inspect sale %s: %w", l.Sale, err)
	}
	epoch = -2
	for _, c := range cmds {
		res, err := c.Int64Slice()
		if err != nil {
			return 0, 0, fmt.Errorf("redis: inspect sale %s: %w", l.Sale, err)
		}
		if len(res) != 2 {
			return 0, 0, ErrNoState
		}
		switch {
		case epoch == -2:
			epoch = res[0]
		case epoch != res[0]:
			epoch = -1
		}
		taken += res[1]
	}
	return epoch, taken, nil
}

// Remove deletes the sale's live state (a creation whose commit failed
// leaves none behind; if the commit did happen, the leader rebuilds it),
// with the staging keys of every install of it (install.go).
func (s *Stock) Remove(ctx context.Context, l Layout) error {
	for b := range l.n() {
		k := s.keys(l, b)
		if err := s.dropStages(ctx, k, -1); err != nil {
			return fmt.Errorf("redis: remove sale %s: %w", l.Sale, err)
		}
		if err := s.c.Unlink(ctx, append(k.list(), k.xout, k.xin)...).Err(); err != nil {
			return fmt.Errorf("redis: remove sale %s: %w", l.Sale, err)
		}
	}
	return nil
}
